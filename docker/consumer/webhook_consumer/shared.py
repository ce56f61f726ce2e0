"""What the consumer, the forwarder and the tools around them share: the
version, the priorities, the handler's exceptions, the Redis key names of
a queue prefix, and reading an envelope.  Standard library only."""

import decimal
import hashlib
import json
import os
import re

__version__ = "0.1.0"

PRIORITIES = ("high", "medium", "low")


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


class HandlerTimeout(BaseException):
    """Raised inside a handler that runs past HANDLER_TIMEOUT.  A
    BaseException, so that a handler's `except Exception` lets it through;
    the event counts as a failed attempt."""


def env_value(name, default, conv=str):
    """The environment variable `name` read by `conv`, or `default` when
    unset or empty; SystemExit when `conv` cannot read it."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return conv(value)
    except ValueError:
        raise SystemExit("webhook_consumer: bad value for %s: %r"
                         % (name, value))


class Keys:
    """Redis key names of one queue prefix."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.attempts = prefix + ":attempts"
        self.failures = prefix + ":failures"
        self.consumers = prefix + ":consumers"
        self.reclaimed = prefix + ":reclaimed"

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

def _number(text):
    """A JSON integer: an int, or a Decimal past Python's limit on the
    digits of an int read from text (4,300 by default), which refuses it."""
    try:
        return int(text)
    except ValueError:
        return decimal.Decimal(text)


def parse_envelope(raw):
    """Decode an envelope (bytes); raises ValueError unless a JSON object.
    Any failure of the decoder is a ValueError: invalid UTF-8, a nesting
    deeper than Python's recursion limit (RecursionError), ..."""
    try:
        env = json.loads(raw, parse_int=_number)
    except Exception as e:
        raise ValueError("not JSON: %s: %s" % (type(e).__name__, e))
    if not isinstance(env, dict):
        raise ValueError("not a JSON object")
    return env


# the start of an envelope the module wrote, read without a JSON decoder
_HEAD = re.compile(rb'\A\{"id":"([^"\\]{1,256})","received_at":"[^"\\]*",'
                   rb'"priority":"(high|medium|low)"')


def envelope_head(raw):
    """(id, priority) of an envelope, either None when not found; never
    raises.  Also for an envelope that parse_envelope refuses: its text
    read with the invalid UTF-8 replaced, or the start of the module's
    envelope, so that it is filed under its own id."""
    for decode in (lambda: parse_envelope(raw),
                   lambda: json.loads(raw.decode("utf-8", "replace"),
                                      parse_int=_number)):
        try:
            env = decode()
        except Exception:
            continue
        if isinstance(env, dict):
            eid, prio = env.get("id"), env.get("priority")
            return (eid if isinstance(eid, str) and eid else None,
                    prio if prio in PRIORITIES else None)
    m = _HEAD.match(raw)
    if m:
        return m.group(1).decode("utf-8", "replace"), m.group(2).decode()
    return None, None


def envelope_id(raw, env=None):
    """The envelope's "id", or "sha1:<hex>" of the text when it has none."""
    eid = env.get("id") if env is not None else envelope_head(raw)[0]
    if isinstance(eid, str) and eid:
        return eid
    return "sha1:" + hashlib.sha1(raw).hexdigest()


def envelope_priority(raw, default="medium"):
    """The envelope's priority when valid, else `default`."""
    return envelope_head(raw)[1] or default


def backoff_delay(failures, base, maximum):
    """Delay before the next attempt after `failures` failed ones (>= 1);
    the exponent is bounded, so that no count of failures overflows."""
    return min(maximum, base * 2.0 ** min(max(failures, 1) - 1, 64))
