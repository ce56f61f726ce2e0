"""A ready handler for the consumer: forwards each envelope to
BridgeCore's `POST /api/v1/webhooks/receive`, in the shape of its
`WebhookReceivePayload`, so that BridgeCore runs unchanged behind
ngx_http_webhook_module.  Standard library only (http.client).

    webhook-consumer run \\
        --forward-url http://bridgecore:8000/api/v1/webhooks/receive \\
        [--forward-token-file /run/secrets/bridgecore] [--forward-rate 200/min]

The request body, from the envelope and the Odoo object in its "payload":

    event_id        the envelope's, when an integer (a string id is left out)
    model           the envelope's (from _webhook_metadata for the instant
    record_id       shape)
    event           the envelope's: create, write or unlink
    timestamp       Odoo's "timestamp" (or _webhook_metadata.timestamp), when
                    ISO 8601; else the envelope's received_at
    priority        the envelope's (the list nginx queued it on)
    category        Odoo's, when a string
    payload         event shape: Odoo's "data" object ({} when absent);
                    instant shape: the record's fields, without the keys
                    "_webhook_metadata" and "_metadata"
    changed_fields  Odoo's, when a list of strings
    user_id         Odoo's, when an integer (top level or _webhook_metadata;
    user_name       never the record's own user_id field), when a string

A field whose value does not fit the schema is left out, never sent as
null, and logged.  Without a usable model, record_id or event there is no
valid request: the event is rejected (dead-lettered at once) with the
reason.  Unknown envelope fields are ignored.

Answers: a 2xx is done when its body is BridgeCore's JSON answer, an
object with "success": true; any other 2xx (a "success": false, a proxy's
HTML login page, a wrong URL) is retried like a 5xx.  429 pauses the
forwarder for Retry-After (or a doubling wait when there is none, at most
the backoff max) and defers the event without counting an attempt.  408
and 425 are retried like a 5xx; other 4xx are permanent: dead-lettered
with the answer as the reason.  5xx, 3xx (redirects are not followed),
timeouts and connection errors are failures that the consumer retries
with its backoff, then dead-letters.

The timeout bounds the whole request: connecting, sending, and reading
the answer's headers and body, however slowly a server trickles them.
"""

import datetime
import decimal
import email.utils
import http.client
import json
import logging
import re
import time
import urllib.parse

from . import exchange
from .shared import PRIORITIES, Defer, Reject, __version__, backoff_delay

log = logging.getLogger(__name__)

EVENTS = ("create", "write", "unlink")
# keys of an instant payload that are not the record's fields
INSTANT_META_KEYS = ("_webhook_metadata", "_metadata")

# what both Python and pydantic read as a datetime
_ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
                       r"(Z|[+-]\d{2}:?\d{2})?\Z")


class ForwardError(Exception):
    """BridgeCore could not take the event now: retried by the consumer."""


# ------------------------------------------------------------------ mapping

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str(v):
    return isinstance(v, str) and v != ""


def _is_timestamp(v):
    if not isinstance(v, str) or not _ISO_8601.match(v):
        return False
    try:
        datetime.datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def _show(v):
    text = json.dumps(v)
    return text if len(text) <= 60 else text[:57] + "..."


def to_bridgecore(envelope):
    """The WebhookReceivePayload body for one envelope.

    Returns (body, left_out): left_out lists the fields whose value did not
    fit, with why.  Raises Reject when model, record_id or event is
    missing or unfit."""
    src = envelope.get("payload")
    if not isinstance(src, dict):
        src = {}
    meta = src.get("_webhook_metadata")
    instant = isinstance(meta, dict)
    # where Odoo put the event's description: the top level of the event
    # shape, or _webhook_metadata (the top level is the record's fields)
    info = meta if instant else src
    body, left_out, missing = {}, [], []

    def field(name, value, fits, why, required=False):
        if value is None:
            if required:
                missing.append("%s is missing" % name)
            return
        if fits(value):
            body[name] = value
        elif required:
            missing.append("%s %s: %s" % (name, why, _show(value)))
        else:
            left_out.append("%s %s: %s" % (name, why, _show(value)))

    def envelope_or(key, odoo_key=None):
        value = envelope.get(key)
        return value if value is not None else info.get(odoo_key or key)

    field("event_id", envelope_or("event_id"), _is_int, "is not an integer")
    field("model", envelope_or("model"), _is_str, "is not a string",
          required=True)
    field("record_id", envelope_or("record_id"), _is_int,
          "is not an integer", required=True)
    field("event", envelope_or("event", "event_type" if instant else "event"),
          lambda v: v in EVENTS, "is not create, write or unlink",
          required=True)
    if missing:
        raise Reject("cannot forward to BridgeCore: " + "; ".join(missing))

    stamp = info.get("timestamp")
    if _is_timestamp(stamp):
        body["timestamp"] = stamp
    else:
        if stamp is not None:
            left_out.append("timestamp is not ISO 8601, received_at sent: %s"
                            % _show(stamp))
        received = envelope.get("received_at")
        body["timestamp"] = received if _is_timestamp(received) else \
            datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="milliseconds").replace("+00:00", "Z")
    field("priority", envelope_or("priority"), lambda v: v in PRIORITIES,
          "is not high, medium or low")
    field("category", info.get("category"), _is_str, "is not a string")

    if instant:
        body["payload"] = {k: v for k, v in src.items()
                           if k not in INSTANT_META_KEYS}
    else:
        data = src.get("data")
        body["payload"] = data if isinstance(data, dict) else {}
        if data is not None and not isinstance(data, dict):
            left_out.append("payload: data is not an object, {} sent: %s"
                            % _show(data))

    field("changed_fields", info.get("changed_fields"),
          lambda v: isinstance(v, list) and all(isinstance(f, str)
                                                for f in v),
          "is not a list of strings")
    field("user_id", info.get("user_id"), _is_int, "is not an integer")
    field("user_name", info.get("user_name"), _is_str, "is not a string")
    return body, left_out


# ------------------------------------------------------------------ rate

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
          "h": 3600, "hour": 3600}


def parse_rate(spec):
    """'200/min' -> (200.0, 60.0); also /s, /sec, /second, /minute, /h,
    /hour; 'off' -> None.  ValueError when unreadable."""
    spec = spec.strip().lower()
    if spec in ("off", "0", "none"):
        return None
    count, sep, unit = spec.partition("/")
    unit = unit.strip()
    if unit.endswith("s") and unit[:-1] in _UNITS:
        unit = unit[:-1]
    try:
        n = float(count)
    except ValueError:
        n = 0
    if not sep or unit not in _UNITS or not n > 0:
        raise ValueError("rate must be like 200/min (or /s, /h), or off: %r"
                         % spec)
    return n, float(_UNITS[unit])


class TokenBucket:
    """`rate` requests per `per` seconds, `burst` at once; hold() stops all
    requests for a while."""

    def __init__(self, rate, per=60.0, burst=1, clock=time.monotonic):
        if rate <= 0 or per <= 0 or burst < 1:
            raise ValueError("need rate > 0, per > 0, burst >= 1")
        self.interval = per / rate      # seconds per token
        self.burst = float(burst)
        self.clock = clock
        self.tokens = self.burst
        self.stamp = clock()
        self.held_until = 0.0

    def reserve(self):
        """Take a token and return 0, or return the seconds to wait (and
        take nothing)."""
        now = self.clock()
        self.tokens = min(self.burst,
                          self.tokens + (now - self.stamp) / self.interval)
        self.stamp = now
        if now < self.held_until:
            return self.held_until - now
        if self.tokens >= 1 - 1e-9:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) * self.interval

    def hold(self, seconds):
        self.held_until = max(self.held_until, self.clock() + seconds)


def retry_after(value, now=None):
    """Seconds of a Retry-After header (delta-seconds or HTTP-date), or
    None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    now = now if now is not None else time.time()
    return max(0.0, when.timestamp() - now)


# ------------------------------------------------------------------ handler

class Forwarder:
    """The handler: call it with an envelope."""

    # the longest wait for the rate inside a call; longer ones are a Defer
    max_inline_wait = 1.0

    def __init__(self, url, token=None, rate="200/min", burst=1,
                 timeout=10.0, backoff_base=1.0, backoff_max=300.0,
                 max_inline_wait=max_inline_wait, clock=time.monotonic,
                 sleep=time.sleep):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("forward URL must be http:// or https://, got %r"
                             % url)
        if timeout <= 0:
            raise ValueError("forward timeout must be more than 0")
        self.url = url
        self.token = token or None
        self.rate = rate
        limit = parse_rate(rate)
        self.bucket = TokenBucket(limit[0], limit[1], burst, clock) \
            if limit else None
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_inline_wait = max_inline_wait
        self.sleep = sleep
        self.throttled = 0          # 429s in a row

    def __repr__(self):
        return "BridgeCore forwarder to %s at %s" % (self.url, self.rate)

    def __call__(self, envelope):
        eid = envelope.get("id")
        body, left_out = to_bridgecore(envelope)
        if left_out:
            log.info("event %s: left out of the BridgeCore request: %s",
                     eid, "; ".join(left_out))
        try:
            data = json.dumps(body, separators=(",", ":"), allow_nan=False,
                              default=_unencodable).encode()
        except ValueError as e:
            raise Reject("cannot forward to BridgeCore: %s" % e)
        self._wait_for_rate()
        status, headers, text = self._post(data, eid)
        if 200 <= status < 300:
            self._check_answer(status, headers, text)
            self.throttled = 0
            log.debug("event %s forwarded: %d %s", eid, status,
                      _snippet(text))
            return
        if status == 429:
            self.throttled += 1
            delay = retry_after(headers.get("Retry-After"))
            if delay is None:
                delay = backoff_delay(self.throttled, self.backoff_base,
                                      self.backoff_max)
            delay = min(self.backoff_max, max(0.1, delay))
            if self.bucket:
                self.bucket.hold(delay)
            log.warning("BridgeCore answered 429 (rate limited), pausing "
                        "%.3gs: %s", delay, _snippet(text))
            raise Defer(delay, "BridgeCore answered 429")
        if 400 <= status < 500 and status not in (408, 425):
            # 408 Request Timeout, 425 Too Early: try again later
            raise Reject("BridgeCore answered %d: %s"
                         % (status, _snippet(text)))
        raise ForwardError("BridgeCore answered %d%s: %s"
                           % (status, " (redirects are not followed)"
                              if 300 <= status < 400 else "",
                              _snippet(text)))

    def _wait_for_rate(self):
        if not self.bucket:
            return
        while True:
            wait = self.bucket.reserve()
            if wait <= 0:
                return
            if wait > self.max_inline_wait:
                # a long wait: let the consumer pause (it renews its lease)
                raise Defer(wait, "forward rate %s" % self.rate)
            self.sleep(wait)

    @staticmethod
    def _check_answer(status, headers, text):
        """ForwardError unless a 2xx's body is BridgeCore's JSON answer."""
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("success") is True:
            return
        if isinstance(answer, dict) and answer.get("success") is False:
            raise ForwardError("BridgeCore answered %d with success false: "
                               "%s" % (status, _snippet(text)))
        raise ForwardError("BridgeCore answered %d with %s, not BridgeCore's "
                           "JSON answer (a proxy, a wrong URL?): %s"
                           % (status, headers.get("Content-Type")
                              or "no Content-Type", _snippet(text)))

    def _post(self, data, eid):
        """(status, headers, body text) of one POST; ForwardError when
        there is no answer within the timeout, counted for the whole
        request (exchange.fetch)."""
        headers = {"Content-Type": "application/json",
                   "Accept": "application/json",
                   "User-Agent": "webhook-consumer/%s" % __version__,
                   "Connection": "close"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        if isinstance(eid, str) and eid:
            headers["Idempotency-Key"] = eid
        try:
            return exchange.fetch(self.url, "POST", data, headers,
                                  self.timeout, limit=65536)
        except TimeoutError as e:
            raise ForwardError("BridgeCore at %s timed out: %s"
                               % (self.url, e))
        except (OSError, http.client.HTTPException) as e:
            raise ForwardError("cannot reach BridgeCore at %s: %s"
                               % (self.url, e))


def _unencodable(value):
    # the consumer reads an integer past Python's digit limit as a Decimal
    if isinstance(value, decimal.Decimal):
        raise ValueError("a number of %d digits, more than BridgeCore's JSON "
                         "reader takes" % len(value.as_tuple().digits))
    raise ValueError("%s is not JSON" % type(value).__name__)


def _snippet(raw, limit=1000):
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
