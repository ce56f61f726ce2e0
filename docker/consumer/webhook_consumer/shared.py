"""What the consumer, the forwarder and the tools around them share: the
version, the priorities, the handler's exceptions, the Redis key names of
a queue prefix, and reading an envelope.  Standard library only."""

import hashlib
import json
import os

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
