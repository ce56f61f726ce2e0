#!/usr/bin/env python3
"""Reference consumer for ngx_http_webhook_module's Redis queues.

Pops envelopes by priority (high, then medium, then low) with the reliable
pattern: each one is moved atomically to a processing list of this consumer,
handed to a handler, and removed from the processing list only when the
handler has returned.  A failing event is retried with exponential backoff
and goes to the dead list of its priority after N attempts; `redrive` moves
dead letters back.  Standard library + redis-py (>= 4.3), Redis >= 6.2.

    webhook_consumer.py run --handler mypkg.handlers:handle
    webhook_consumer.py recover --all
    webhook_consumer.py redrive --priority high --count 10
    webhook_consumer.py dead --count 20

Keys (prefix <q> = WEBHOOK_QUEUE, default "{webhook}"):

    <q>:queue:<priority>       list    written by nginx (LPUSH); right = oldest
    <q>:processing:<consumer>  list    envelopes a consumer is handling
    <q>:retry:<priority>       zset    failed envelopes, score = when due
    <q>:dead:<priority>        list    envelopes given up on (the original text)
    <q>:attempts               hash    envelope id -> failed attempts so far
    <q>:failures               hash    envelope id -> JSON: last error, attempts
    <q>:consumer:<consumer>    string  lease of a consumer name, with a TTL

A handler is a function taking the envelope (a dict).  It succeeds by
returning; any exception is a failure that is retried; `Reject` sends the
event to the dead list at once; `Defer` puts it back at the front of its
queue, uncounted, and pauses the consumer (a downstream rate limit).

`--forward-url URL` (env FORWARD_URL) uses the ready handler of
bridgecore.py instead: each envelope is POSTed to BridgeCore's
/api/v1/webhooks/receive in the shape of its WebhookReceivePayload.
"""

import argparse
import hashlib
import importlib
import json
import logging
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass

import redis

__version__ = "0.1.0"

PRIORITIES = ("high", "medium", "low")

log = logging.getLogger("webhook_consumer")


class Reject(Exception):
    """Raised by a handler: the event can never succeed, dead-letter it now."""


class Defer(Exception):
    """Raised by a handler: not now, through no fault of the event (the
    downstream asked to slow down).  The envelope goes back to the front of
    its queue, no attempt is counted, and the consumer takes nothing for
    `delay` seconds (at most BACKOFF_MAX)."""

    def __init__(self, delay, reason=""):
        super().__init__(reason)
        self.delay = float(delay)


class LeaseError(Exception):
    """The consumer name is held by another live process."""


# ------------------------------------------------------------------ config

def _env(name, default, conv=str):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return conv(value)
    except ValueError:
        raise SystemExit("webhook_consumer: bad value for %s: %r"
                         % (name, value))


@dataclass
class Config:
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue: str = "{webhook}"
    name: str = ""
    handler: str = "webhook_consumer:log_event"
    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    block_timeout: float = 1.0
    lease_ttl: float = 30.0
    drain: bool = False

    def __post_init__(self):
        if not self.name:
            self.name = socket.gethostname()

    @classmethod
    def from_env(cls):
        return cls(
            redis_url=_env("REDIS_URL", cls.redis_url),
            queue=_env("WEBHOOK_QUEUE", cls.queue),
            name=_env("CONSUMER_NAME", ""),
            handler=_env("WEBHOOK_HANDLER", cls.handler),
            max_attempts=_env("MAX_ATTEMPTS", cls.max_attempts, int),
            backoff_base=_env("BACKOFF_BASE", cls.backoff_base, float),
            backoff_max=_env("BACKOFF_MAX", cls.backoff_max, float),
            block_timeout=_env("BLOCK_TIMEOUT", cls.block_timeout, float),
            lease_ttl=_env("LEASE_TTL", cls.lease_ttl, float),
        )

    def check(self):
        """Return a list of what is wrong with the settings."""
        errors = []
        if self.max_attempts < 1:
            errors.append("max attempts must be 1 or more")
        if self.backoff_base <= 0 or self.backoff_max < self.backoff_base:
            errors.append("backoff: need 0 < base <= max")
        if self.block_timeout < 0.01:
            errors.append("block timeout must be at least 0.01 s")
        if self.lease_ttl < 1:
            errors.append("lease TTL must be at least 1 s")
        elif self.block_timeout > self.lease_ttl / 3:
            errors.append("block timeout must be at most a third of the "
                          "lease TTL")
        if not self.queue or not self.name:
            errors.append("queue prefix and consumer name must not be empty")
        return errors


class Keys:
    """Redis key names of one queue prefix."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.attempts = prefix + ":attempts"
        self.failures = prefix + ":failures"

    def queue(self, priority):
        return "%s:queue:%s" % (self.prefix, priority)

    def retry(self, priority):
        return "%s:retry:%s" % (self.prefix, priority)

    def dead(self, priority):
        return "%s:dead:%s" % (self.prefix, priority)

    def processing(self, name):
        return "%s:processing:%s" % (self.prefix, name)

    def lease(self, name):
        return "%s:consumer:%s" % (self.prefix, name)

    def processing_pattern(self):
        """SCAN pattern of every processing list (the prefix glob-escaped)."""
        escaped = "".join("\\" + c if c in "*?[]\\" else c
                          for c in self.prefix)
        return escaped + ":processing:*"


# ------------------------------------------------------------------ envelopes

def parse_envelope(raw):
    """Decode an envelope (bytes); raises ValueError unless a JSON object."""
    try:
        env = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError("not JSON: %s" % e)
    if not isinstance(env, dict):
        raise ValueError("not a JSON object")
    return env


def envelope_id(raw, env=None):
    """The envelope's "id", or "sha1:<hex>" of the text when it has none."""
    if env is None:
        try:
            env = parse_envelope(raw)
        except ValueError:
            env = {}
    eid = env.get("id")
    if isinstance(eid, str) and eid:
        return eid
    return "sha1:" + hashlib.sha1(raw).hexdigest()


def envelope_priority(raw, default="medium"):
    """The envelope's priority when valid, else `default`."""
    try:
        prio = parse_envelope(raw).get("priority")
    except ValueError:
        return default
    return prio if prio in PRIORITIES else default


def backoff_delay(failures, base, maximum):
    """Delay before the next attempt after `failures` failed ones (>= 1)."""
    return min(maximum, base * 2 ** (failures - 1))


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


def log_event(envelope):
    """The default handler: log one line per event."""
    log.info("event id=%s priority=%s model=%s record_id=%s event=%s "
             "event_id=%s", envelope.get("id"), envelope.get("priority"),
             envelope.get("model"), envelope.get("record_id"),
             envelope.get("event"), envelope.get("event_id"))


# ------------------------------------------------------------------ scripts

# Take the next envelope: first move due retries back to the front (right
# end) of their queues, earliest due first; then LMOVE from the first
# non-empty queue by priority to the processing list.  Returns
# {priority index, envelope}, or {0, seconds until the next retry is due}
# ("-1" when no retry is waiting).  Time is Redis's clock.
# KEYS: queue high, medium, low, retry high, medium, low, processing
# ARGV: most retries to move per priority
TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, 3 do
    local due = redis.call('ZRANGEBYSCORE', KEYS[i + 3], '-inf',
                           string.format('%.6f', now), 'LIMIT', 0, ARGV[1])
    for j = #due, 1, -1 do
        redis.call('ZREM', KEYS[i + 3], due[j])
        redis.call('RPUSH', KEYS[i], due[j])
    end
end
for i = 1, 3 do
    local raw = redis.call('LMOVE', KEYS[i], KEYS[7], 'RIGHT', 'LEFT')
    if raw then
        return {i, raw}
    end
end
local next_due = -1
for i = 4, 6 do
    local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    if first[2] then
        local wait = math.max(0, tonumber(first[2]) - now)
        if next_due < 0 or wait < next_due then
            next_due = wait
        end
    end
end
return {0, string.format('%.6f', next_due)}
"""

# A failed attempt: take the envelope out of the processing list; count the
# attempt; dead-letter it (the original text, failure info in the failures
# hash) when it was the last attempt or is rejected, else schedule a retry.
# Nothing happens when the envelope is no longer in the processing list.
# Returns {"retry"|"dead"|"gone", attempts, delay}.
# KEYS: processing, attempts, retry, dead, failures
# ARGV: envelope, id, max attempts, backoff base, backoff max, reject (0|1),
#       error, consumer, priority, unix time
FAIL_LUA = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return {'gone', 0, '0'}
end
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if ARGV[6] == '1' or n >= tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[2], ARGV[2])
    redis.call('LPUSH', KEYS[4], ARGV[1])
    redis.call('HSET', KEYS[5], ARGV[2], cjson.encode({
        attempts = n, error = ARGV[7], consumer = ARGV[8],
        priority = ARGV[9], failed_at = tonumber(ARGV[10])}))
    return {'dead', n, '0'}
end
local delay = math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ (n - 1))
local t = redis.call('TIME')
local due = tonumber(t[1]) + tonumber(t[2]) / 1000000 + delay
redis.call('ZADD', KEYS[3], string.format('%.6f', due), ARGV[1])
return {'retry', n, string.format('%.6f', delay)}
"""

# Put an envelope that no handler saw back at the front of its queue.
# KEYS: processing, queue.  ARGV: envelope.
REQUEUE_LUA = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return 0
end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""

# Lease of a consumer name.  ARGV: token, TTL in ms.
# Returns 1 when held by this token (renewed or taken), 0 when held by another.
LEASE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if holder then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


# ------------------------------------------------------------------ consumer

class Consumer:
    """One consumer: a name, a Redis connection, a handler."""

    def __init__(self, config, handler=None, client=None):
        self.config = config
        self.keys = Keys(config.queue)
        self.handler = handler or log_event
        self.redis = client or redis.Redis.from_url(
            config.redis_url, socket_connect_timeout=5,
            socket_timeout=config.block_timeout + 10,
            health_check_interval=30)
        self.token = "%s:%d:%s" % (socket.gethostname(), os.getpid(),
                                   uuid.uuid4().hex[:8])
        self.processing = self.keys.processing(config.name)
        self.stopping = False
        self.resync = False
        self.paused_until = 0.0     # time.monotonic() after a Defer
        self._lease_renewed = 0.0
        self._take = self.redis.register_script(TAKE_LUA)
        self._fail = self.redis.register_script(FAIL_LUA)
        self._requeue = self.redis.register_script(REQUEUE_LUA)
        self._lease = self.redis.register_script(LEASE_LUA)
        self._release = self.redis.register_script(RELEASE_LUA)

    # ---- leases

    def acquire_lease(self, name, wait=0.0):
        """Hold the lease of `name`, waiting up to `wait` s; True if held."""
        key = self.keys.lease(name)
        ttl_ms = int(self.config.lease_ttl * 1000)
        deadline = time.monotonic() + wait
        while True:
            if self._lease(keys=[key], args=[self.token, ttl_ms]) == 1:
                return True
            if time.monotonic() >= deadline or self.stopping:
                return False
            time.sleep(0.5)

    def release_lease(self, name):
        self._release(keys=[self.keys.lease(name)], args=[self.token])

    def renew_lease(self):
        """Renew our lease every third of its TTL; LeaseError if lost."""
        now = time.monotonic()
        if now - self._lease_renewed < self.config.lease_ttl / 3:
            return
        if not self.acquire_lease(self.config.name):
            raise LeaseError("consumer name %r was taken over by %s"
                             % (self.config.name, self.redis.get(
                                 self.keys.lease(self.config.name))))
        self._lease_renewed = now

    # ---- state transitions

    def fail(self, priority, raw, eid, error, reject=False, name=None):
        """Count a failed attempt; returns (outcome, attempts, delay)."""
        c = self.config
        outcome, attempts, delay = self._fail(
            keys=[self.keys.processing(name or c.name), self.keys.attempts,
                  self.keys.retry(priority), self.keys.dead(priority),
                  self.keys.failures],
            args=[raw, eid, c.max_attempts, repr(c.backoff_base),
                  repr(c.backoff_max), "1" if reject else "0", error[:2000],
                  name or c.name, priority, "%.3f" % time.time()])
        return outcome.decode(), attempts, float(delay)

    def ack(self, raw, eid):
        """Remove a handled envelope; False if it was no longer ours."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(self.processing, 1, raw)
        pipe.hdel(self.keys.attempts, eid)
        removed, _ = pipe.execute()
        return removed == 1

    def recover(self, name):
        """Recover the processing list of consumer `name`, whose lease the
        caller holds: each envelope left there counts as a failed attempt
        ("consumer died while handling it") and is retried or dead-lettered.
        Returns how many envelopes were recovered."""
        count = 0
        key = self.keys.processing(name)
        # oldest (right end) first
        for raw in reversed(self.redis.lrange(key, 0, -1)):
            priority = envelope_priority(raw)
            eid = envelope_id(raw)
            outcome, attempts, delay = self.fail(
                priority, raw, eid, "consumer %s died while handling it"
                % name, name=name)
            if outcome == "gone":
                continue
            count += 1
            log.warning("recovered event %s (%s) from %s: attempt %d, %s",
                        eid, priority, key, attempts,
                        "dead-lettered" if outcome == "dead"
                        else "retry in %.3gs" % delay)
        return count

    def recover_all(self):
        """Recover the processing lists of every consumer without a lease
        (dead ones); returns {consumer name: envelopes recovered}."""
        done = {}
        prefix = self.keys.processing("").encode()
        for key in self.redis.scan_iter(match=self.keys.processing_pattern(),
                                        count=100):
            name = key[len(prefix):].decode("utf-8", "replace")
            if not self.acquire_lease(name):
                log.info("consumer %s is alive, its list is left alone", name)
                continue
            try:
                done[name] = self.recover(name)
            finally:
                self.release_lease(name)
        return done

    def _resync(self):
        """After a lost connection: an envelope may have been moved to our
        processing list without our seeing the reply.  No handler saw it,
        so put it back at the front of its queue."""
        for raw in self.redis.lrange(self.processing, 0, -1):
            priority = envelope_priority(raw)
            if self._requeue(keys=[self.processing, self.keys.queue(priority)],
                             args=[raw]):
                log.warning("requeued event %s (%s) after a lost connection",
                            envelope_id(raw), priority)
        self.resync = False

    # ---- the loop

    def take(self):
        """Next (priority, envelope) or None, blocking up to the block
        timeout (shorter when a retry falls due sooner)."""
        k = self.keys
        idx, value = self._take(
            keys=[k.queue(p) for p in PRIORITIES]
            + [k.retry(p) for p in PRIORITIES] + [self.processing],
            args=[100])
        if idx:
            return PRIORITIES[idx - 1], value
        next_due = float(value)
        if self.config.drain and next_due < 0:
            self.stopping = True    # queues and retries empty
            return None
        wait = self.config.block_timeout
        if 0 <= next_due < wait:
            wait = max(0.01, next_due)
        # BLMOVE watches one list only: block on high; medium and low are
        # seen by the next take, within `wait` seconds
        raw = self.redis.blmove(k.queue("high"), self.processing, wait,
                                src="RIGHT", dest="LEFT")
        return ("high", raw) if raw is not None else None

    def handle(self, priority, raw):
        """Run the handler on one envelope, then ack, retry or dead-letter."""
        try:
            env = parse_envelope(raw)
        except ValueError as e:
            eid = envelope_id(raw, {})
            self._settle_failure(priority, raw, eid,
                                 "invalid envelope: %s" % e, True)
            return
        eid = envelope_id(raw, env)
        log.debug("handling event %s (%s)", eid, priority)
        try:
            self.handler(env)
        except Reject as e:
            self._settle_failure(priority, raw, eid,
                                 "rejected: %s" % (e or type(e).__name__),
                                 True)
        except Defer as e:
            self._defer(priority, raw, eid, e)
        except Exception as e:
            self._settle_failure(priority, raw, eid,
                                 "%s: %s" % (type(e).__name__, e), False)
        else:
            if not self._retry_redis(lambda: self.ack(raw, eid)):
                log.warning("event %s was taken from %s by a recovery while "
                            "being handled; it may be handled again",
                            eid, self.processing)

    def _settle_failure(self, priority, raw, eid, error, reject):
        outcome, attempts, delay = self._retry_redis(
            lambda: self.fail(priority, raw, eid, error, reject))
        if outcome == "dead":
            log.error("event %s (%s) dead-lettered to %s after %d "
                      "attempt(s): %s", eid, priority,
                      self.keys.dead(priority), attempts, error)
        elif outcome == "retry":
            log.warning("event %s (%s) failed (attempt %d of %d), retry in "
                        "%.3gs: %s", eid, priority, attempts,
                        self.config.max_attempts, delay, error)
        else:
            log.warning("event %s was taken from %s by a recovery while "
                        "being handled", eid, self.processing)

    def _defer(self, priority, raw, eid, e):
        """Back to the front of its queue, no attempt counted; pause."""
        delay = min(max(e.delay, 0.0), self.config.backoff_max)
        if self._retry_redis(lambda: self._requeue(
                keys=[self.processing, self.keys.queue(priority)],
                args=[raw])):
            log.info("event %s (%s) deferred, taking nothing for %.3gs: %s",
                     eid, priority, delay, e or "deferred by the handler")
        else:
            log.warning("event %s was taken from %s by a recovery while "
                        "being handled", eid, self.processing)
        self.paused_until = time.monotonic() + delay

    def _retry_redis(self, call):
        """Run `call` until Redis answers (the settle steps must not be
        lost on a connection blip); gives up only when stopping."""
        delay = 0.1
        while True:
            try:
                return call()
            except (redis.ConnectionError, redis.TimeoutError) as e:
                if self.stopping:
                    raise
                log.warning("redis: %s; retrying in %.1fs", e, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def run(self):
        """Take and handle events until stop() (SIGTERM) or, with drain,
        until the queues and retries are empty.  Returns an exit code."""
        c = self.config
        log.info("consumer %s on %s, queue %s, handler %s, max attempts %d",
                 c.name, redact_url(c.redis_url), c.queue,
                 getattr(self.handler, "__qualname__", self.handler),
                 c.max_attempts)
        if not self._retry_redis(
                lambda: self.acquire_lease(c.name, wait=c.lease_ttl + 1)):
            if self.stopping:
                return 0
            log.error("consumer name %r is in use by %s; give every "
                      "consumer its own CONSUMER_NAME", c.name,
                      self.redis.get(self.keys.lease(c.name)))
            return 3
        self._lease_renewed = time.monotonic()
        try:
            n = self._retry_redis(lambda: self.recover(c.name))
            if n:
                log.warning("recovered %d event(s) left by a previous run", n)
            delay = 0.1
            while not self.stopping:
                try:
                    self.renew_lease()
                    if self.resync:
                        self._resync()
                    pause = self.paused_until - time.monotonic()
                    if pause > 0:
                        # a handler deferred: wait, renewing the lease
                        time.sleep(min(pause, c.block_timeout))
                        continue
                    item = self.take()
                    delay = 0.1
                except (redis.ConnectionError, redis.TimeoutError) as e:
                    log.warning("redis: %s; retrying in %.1fs", e, delay)
                    self.resync = True
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                if item is not None:
                    self.handle(*item)
        except LeaseError as e:
            log.error("%s; stopping", e)
            return 3
        except redis.RedisError as e:
            log.error("redis: %s; stopping", e)
            return 1
        finally:
            try:
                self.release_lease(c.name)
            except redis.RedisError:
                pass
        log.info("consumer %s stopped", c.name)
        return 0

    def stop(self):
        self.stopping = True

    # ---- dead letters

    def redrive(self, priorities=PRIORITIES, count=None):
        """Move up to `count` (None: all) dead letters of each priority,
        oldest first, to the back of their queue.  Returns {priority: n}."""
        moved = {}
        for p in priorities:
            n = 0
            while count is None or n < count:
                raw = self.redis.lmove(self.keys.dead(p), self.keys.queue(p),
                                       src="RIGHT", dest="LEFT")
                if raw is None:
                    break
                self.redis.hdel(self.keys.failures, envelope_id(raw))
                n += 1
            moved[p] = n
            if n:
                log.info("redrove %d event(s) from %s to %s", n,
                         self.keys.dead(p), self.keys.queue(p))
        return moved

    def dead_letters(self, priorities=PRIORITIES, count=None):
        """Yield dicts: priority, id, failure (info or None), envelope text;
        oldest first, at most `count` (None: all) per priority."""
        for p in priorities:
            start = 0 if count is None else -count
            for raw in reversed(self.redis.lrange(self.keys.dead(p), start,
                                                  -1)):
                eid = envelope_id(raw)
                info = self.redis.hget(self.keys.failures, eid)
                yield {"priority": p, "id": eid,
                       "failure": json.loads(info) if info else None,
                       "envelope": raw.decode("utf-8", "replace")}


def redact_url(url):
    """The Redis URL without its password, for the log."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


# ------------------------------------------------------------------ CLI

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
                        "renewal; longer than the slowest handler run; env "
                        "LEASE_TTL (default %(default)s)")
    common.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"),
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
    run.add_argument("--block-timeout", type=float,
                     default=defaults.block_timeout,
                     help="longest idle wait, also the longest delay before "
                     "an idle consumer sees a medium or low event; env "
                     "BLOCK_TIMEOUT (default %(default)s)")
    fwd = run.add_argument_group(
        "forwarding to BridgeCore (bridgecore.py), instead of --handler")
    fwd.add_argument("--forward-url", default=_env("FORWARD_URL", ""),
                     help="POST each event to this URL, e.g. "
                     "http://bridgecore:8000/api/v1/webhooks/receive; env "
                     "FORWARD_URL")
    fwd.add_argument("--forward-token", default=_env("FORWARD_TOKEN", ""),
                     help="sent as 'Authorization: Bearer ...'; env "
                     "FORWARD_TOKEN")
    fwd.add_argument("--forward-token-file",
                     default=_env("FORWARD_TOKEN_FILE", ""),
                     help="the token is the first line of this file; env "
                     "FORWARD_TOKEN_FILE")
    fwd.add_argument("--forward-rate", default=_env("FORWARD_RATE",
                                                    "200/min"),
                     help="most requests per second, minute or hour "
                     "(N/s, N/min, N/h, or off); env FORWARD_RATE (default "
                     "%(default)s)")
    fwd.add_argument("--forward-burst", type=int,
                     default=_env("FORWARD_BURST", 1, int),
                     help="requests sent at once before the rate applies; "
                     "env FORWARD_BURST (default %(default)s)")
    fwd.add_argument("--forward-timeout", type=float,
                     default=_env("FORWARD_TIMEOUT", 10.0, float),
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
    if args.forward_timeout >= config.lease_ttl:
        log.error("bad settings: the forward timeout must be shorter than "
                  "the lease TTL")
        return None
    import bridgecore
    try:
        return bridgecore.Forwarder(
            args.forward_url, token=token, rate=args.forward_rate,
            burst=args.forward_burst, timeout=args.forward_timeout,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max)
    except ValueError as e:
        log.error("bad settings: %s", e)
        return None


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
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
        def on_signal(signum, frame):
            log.info("%s: finishing the current event, then stopping "
                     "(again to stop at once)", signal.Signals(signum).name)
            consumer.stop()
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
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


if __name__ == "__main__":
    # handlers import Reject from "webhook_consumer": make it this module
    sys.modules.setdefault("webhook_consumer", sys.modules[__name__])
    sys.exit(main())
