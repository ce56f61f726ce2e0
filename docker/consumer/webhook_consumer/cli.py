"""The command line: `webhook-consumer run|recover|redrive|dead`.  Every
setting is a flag and an environment variable; a handler is loaded by its
dotted path, 'package.module:function'.  `webhook-consumer reconcile ...`
is webhook-reconcile (webhook_consumer.reconcile), with its own options."""

import argparse
import importlib
import json
import logging
import sys

import redis

from .bridgecore import Forwarder
from .consumer import Config, Consumer
from .shared import PRIORITIES, __version__, env_value

log = logging.getLogger(__name__)


def load_handler(spec):
    """'package.module:function' (or 'module:Class.method') -> callable."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError("handler must be 'module:function', got %r" % spec)
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError("handler %r is not callable" % spec)
    return obj


def build_parser():
    defaults = Config.from_env()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--redis-url", default=defaults.redis_url,
                        help="env REDIS_URL (default %(default)s); "
                        "redis://[[user]:password@]host:port/db or "
                        "unix:///path?db=0")
    common.add_argument("--queue", default=defaults.queue,
                        help="key prefix, env WEBHOOK_QUEUE "
                        "(default %(default)s)")
    common.add_argument("--name", default=defaults.name,
                        help="consumer name, env CONSUMER_NAME (default: the "
                        "host name); stable and unique per consumer process")
    common.add_argument("--max-attempts", type=int,
                        default=defaults.max_attempts,
                        help="env MAX_ATTEMPTS (default %(default)s)")
    common.add_argument("--backoff-base", type=float,
                        default=defaults.backoff_base,
                        help="seconds before the 2nd attempt, doubling after; "
                        "env BACKOFF_BASE (default %(default)s)")
    common.add_argument("--backoff-max", type=float,
                        default=defaults.backoff_max,
                        help="env BACKOFF_MAX (default %(default)s)")
    common.add_argument("--lease-ttl", type=float, default=defaults.lease_ttl,
                        help="seconds a consumer name stays taken without a "
                        "renewal (a thread renews it every third); env "
                        "LEASE_TTL (default %(default)s)")
    common.add_argument("--log-level",
                        default=env_value("LOG_LEVEL", "INFO"),
                        help="env LOG_LEVEL (default %(default)s)")
    priorities = argparse.ArgumentParser(add_help=False)
    priorities.add_argument("--priority", action="append", choices=PRIORITIES,
                            help="only this priority (repeatable; default "
                            "all)")
    priorities.add_argument("--count", type=int,
                            help="at most this many per priority "
                            "(default all)")

    parser = argparse.ArgumentParser(
        prog="webhook_consumer",
        description="Reference consumer of ngx_http_webhook_module's Redis "
        "queues.")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", metavar="command")
    run = sub.add_parser("run", parents=[common],
                         help="consume events (the default command)")
    run.add_argument("--handler", default=defaults.handler,
                     help="module:function called with each envelope; env "
                     "WEBHOOK_HANDLER (default %(default)s)")
    run.add_argument("--handler-timeout", type=float,
                     default=defaults.handler_timeout or None,
                     help="seconds a handler may run: past it, it is "
                     "interrupted and the event counts as a failed attempt; "
                     "shorter than the lease TTL; env HANDLER_TIMEOUT "
                     "(default: two thirds of the lease TTL)")
    run.add_argument("--block-timeout", type=float,
                     default=defaults.block_timeout,
                     help="longest idle wait, also the longest delay before "
                     "an idle consumer sees a medium or low event; env "
                     "BLOCK_TIMEOUT (default %(default)s)")
    fwd = run.add_argument_group(
        "forwarding to BridgeCore (webhook_consumer.bridgecore), instead of "
        "--handler")
    fwd.add_argument("--forward-url", default=env_value("FORWARD_URL", ""),
                     help="POST each event to this URL, e.g. "
                     "http://bridgecore:8000/api/v1/webhooks/receive; env "
                     "FORWARD_URL")
    fwd.add_argument("--forward-token",
                     default=env_value("FORWARD_TOKEN", ""),
                     help="sent as 'Authorization: Bearer ...'; env "
                     "FORWARD_TOKEN")
    fwd.add_argument("--forward-token-file",
                     default=env_value("FORWARD_TOKEN_FILE", ""),
                     help="the token is the first line of this file; env "
                     "FORWARD_TOKEN_FILE")
    fwd.add_argument("--forward-rate",
                     default=env_value("FORWARD_RATE", "200/min"),
                     help="most requests per second, minute or hour "
                     "(N/s, N/min, N/h, or off); env FORWARD_RATE (default "
                     "%(default)s)")
    fwd.add_argument("--forward-burst", type=int,
                     default=env_value("FORWARD_BURST", 1, int),
                     help="requests sent at once before the rate applies; "
                     "env FORWARD_BURST (default %(default)s)")
    fwd.add_argument("--forward-timeout", type=float,
                     default=env_value("FORWARD_TIMEOUT", 10.0, float),
                     help="seconds to wait for BridgeCore's answer; env "
                     "FORWARD_TIMEOUT (default %(default)s)")
    run.add_argument("--drain", action="store_true",
                     help="exit once the queues and retries are empty")
    rec = sub.add_parser("recover", parents=[common],
                         help="retry what a stopped consumer left in its "
                         "processing list")
    rec.add_argument("--all", action="store_true",
                     help="every consumer whose lease has expired")
    sub.add_parser("redrive", parents=[common, priorities],
                   help="move dead letters back to their queue")
    sub.add_parser("dead", parents=[common, priorities],
                   help="list dead letters as JSON lines, oldest first")
    return parser


def forwarder(args, config):
    """The BridgeCore handler of the --forward-* settings, or None (and an
    error logged)."""
    if config.handler != Config.handler:
        log.error("--handler and --forward-url exclude each other")
        return None
    token = args.forward_token
    if args.forward_token_file:
        try:
            with open(args.forward_token_file) as f:
                token = f.readline().strip()
        except OSError as e:
            log.error("cannot read the forward token: %s", e)
            return None
        if not token:
            log.error("the forward token file %s is empty",
                      args.forward_token_file)
            return None
    # the forwarder runs as the handler: its rate wait (at most
    # Forwarder.max_inline_wait) and the whole request must end before the
    # handler is interrupted
    if args.forward_timeout + Forwarder.max_inline_wait \
            >= config.handler_deadline:
        log.error("bad settings: the forward timeout (%gs) and a rate wait "
                  "(up to %gs) must be shorter than the handler timeout "
                  "(%gs)", args.forward_timeout, Forwarder.max_inline_wait,
                  config.handler_deadline)
        return None
    try:
        return Forwarder(
            args.forward_url, token=token, rate=args.forward_rate,
            burst=args.forward_burst, timeout=args.forward_timeout,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max)
    except ValueError as e:
        log.error("bad settings: %s", e)
        return None


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["reconcile"]:
        from .reconcile import main as reconcile
        return reconcile(argv[1:])
    if not argv or argv[0].startswith("-") and argv[0] not in (
            "-h", "--help", "--version"):
        argv.insert(0, "run")
    args = build_parser().parse_args(argv)
    level = logging.getLevelName(args.log_level.upper())
    if not isinstance(level, int):
        raise SystemExit("webhook_consumer: bad log level %r"
                         % args.log_level)
    logging.basicConfig(
        stream=sys.stderr, level=level,
        format="%(asctime)s %(levelname)s webhook-consumer[" + args.name
        + "] %(message)s")
    config = Config(redis_url=args.redis_url, queue=args.queue,
                    name=args.name, max_attempts=args.max_attempts,
                    backoff_base=args.backoff_base,
                    backoff_max=args.backoff_max, lease_ttl=args.lease_ttl)
    if args.command == "run":
        config.handler = args.handler
        config.block_timeout = args.block_timeout
        config.handler_timeout = args.handler_timeout or 0.0
        config.drain = args.drain
    errors = config.check()
    if getattr(args, "count", None) is not None and args.count < 1:
        errors.append("--count must be 1 or more")
    if errors:
        log.error("bad settings: %s", "; ".join(errors))
        return 1

    handler = None
    if args.command == "run" and args.forward_url:
        handler = forwarder(args, config)
        if handler is None:
            return 1
    elif args.command == "run":
        try:
            handler = load_handler(config.handler)
        except Exception as e:
            log.error("cannot load handler %s: %s", config.handler, e)
            return 1
    consumer = Consumer(config, handler)

    if args.command == "run":
        return consumer.run()

    try:
        if args.command == "recover":
            if args.all:
                done = consumer.recover_all()
            elif consumer.acquire_lease(config.name):
                try:
                    done = {config.name: consumer.recover(config.name)}
                finally:
                    consumer.release_lease(config.name)
            else:
                log.error("consumer %s is alive (its lease is held)",
                          config.name)
                return 3
            print(json.dumps(done, sort_keys=True))
        elif args.command == "redrive":
            moved = consumer.redrive(args.priority or PRIORITIES, args.count)
            print(json.dumps(moved))
        elif args.command == "dead":
            for letter in consumer.dead_letters(args.priority or PRIORITIES,
                                                args.count):
                print(json.dumps(letter, sort_keys=True))
    except redis.RedisError as e:
        log.error("redis: %s", e)
        return 1
    return 0

