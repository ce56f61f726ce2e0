"""Reference consumer for ngx_http_webhook_module's Redis queues.

Pops envelopes by priority (high, then medium, then low) with the reliable
pattern: each one is moved atomically to a processing list of this consumer,
handed to a handler, and removed from the processing list only when the
handler has returned.  A failing event is retried with exponential backoff
and goes to the dead list of its priority after N attempts; `redrive` moves
dead letters back.  Standard library + redis-py (>= 4.3), Redis >= 6.2.

    webhook-consumer run --handler mypkg.handlers:handle
    webhook-consumer recover --all
    webhook-consumer redrive --priority high --count 10
    webhook-consumer dead --count 20

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
webhook_consumer.bridgecore instead: each envelope is POSTed to
BridgeCore's /api/v1/webhooks/receive in the shape of its
WebhookReceivePayload.

Modules: shared (version, priorities, exceptions, key names, envelopes),
scripts (the Lua state transitions), consumer (Config, Consumer),
bridgecore (the forwarder), cli (the command line).  Each imports only
the ones before it; this file re-exports what handlers and tools use.
"""

import logging

from .shared import (PRIORITIES, Defer, Keys, LeaseError, Reject,
                     __version__, backoff_delay, env_value, envelope_id,
                     envelope_priority, parse_envelope)
from .consumer import Config, Consumer, log_event, redact_url
from .cli import build_parser, load_handler, main

log = logging.getLogger(__name__)

__all__ = [
    "PRIORITIES", "Config", "Consumer", "Defer", "Keys", "LeaseError",
    "Reject", "__version__", "backoff_delay", "build_parser", "env_value",
    "envelope_id", "envelope_priority", "load_handler", "log", "log_event",
    "main", "parse_envelope", "redact_url",
]
