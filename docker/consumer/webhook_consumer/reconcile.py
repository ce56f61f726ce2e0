"""webhook-reconcile: pull back every event Odoo recorded but could not
hand to nginx.

Odoo's auto-webhook addon keeps each `webhook.event` with its outcome, and
never sends again one that got an answer, whatever the answer.  Every
--interval, the reconciler reads from Odoo (read only, XML-RPC or JSON-2)
the events of one subscriber that the module did not acknowledge, and
replays each, in id order, through the module's own receive location,
with the token of the Odoo database's sender name and the header
X-Webhook-Replay, in the event shape of the addon's _build_payload.

Not acknowledged: an event `sent` whose response_code is not 200, or whose
response_body is not one of the module's accepting answers (queued,
spooled, duplicate); `failed` and `dead` events; `pending` and
`processing` events created more than --grace ago.  (The instant path
records no body: `sent` with 200 and no body is acknowledged.)

Progress, in Redis under the queue's prefix (its hash tag: one Cluster
slot), per reconciler name <db>/<subscriber id>:

    <q>:reconcile:<name>:mark      string  every event up to this id is
                                           settled in Odoo and, if not
                                           acknowledged, replayed
    <q>:reconcile:<name>:replayed  zset    ids above the mark replayed
                                           (answered 200), score = id
    <q>:reconcile:<name>:lease     string  the instance making passes
    <q>:reconcilers                hash    name -> heartbeat (JSON), read
                                           by nginx's status location

The mark never passes an event not yet settled: one still pending or
processing within --grace, one whose replay was refused, or one created
less than --grace ago (a transaction that is not committed yet may hold a
smaller id).  A replay answered 200 is remembered before the next one;
one whose answer was lost (a crash, a timeout) is replayed again and the
module answers it `duplicate` (same sender, same event_id).
"""

import argparse
import datetime
import http.client
import json
import logging
import os
import re
import signal
import socket
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import redis

from . import exchange, odoo
from .consumer import redact_url
from .scripts import LEASE_LUA, RELEASE_LUA
from .shared import __version__, env_value

log = logging.getLogger("webhook_reconcile")

ACCEPTED = ("queued", "spooled", "duplicate")
UNSETTLED = ("pending", "processing")

# what Redis (or a Cluster) raises when it cannot be used
REDIS_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException)

# what a page of candidates reads, and what a replay needs
LIGHT_FIELDS = ("status", "response_code", "response_body", "create_date")
EVENT_FIELDS = ("model", "record_id", "event", "timestamp", "priority",
                "category", "payload", "changed_fields", "template_id")

# events whose payloads are read at a time: a record's data can run into
# megabytes (HTML notes, images), so this, not --page, bounds the memory
PAYLOADS_AT_ONCE = 20

# answers of the module that concern the event, not the path to it: the
# pass goes on with the next event
EVENT_REFUSALS = (400, 413, 415, 422)

# A heartbeat in <q>:reconcilers, on Redis's clock.
# KEYS: the hash.  ARGV: name, "start" | "ok" | "fail", events replayed,
# events waiting, error.
HEARTBEAT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = {}
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
    local ok, v = pcall(cjson.decode, old)
    if ok and type(v) == 'table' then b = v end
end
b.since = tonumber(b.since) or now
b.ok = tonumber(b.ok) or 0
b.error_at = tonumber(b.error_at) or 0
b.replayed = (tonumber(b.replayed) or 0) + tonumber(ARGV[3])
b.failing = tonumber(b.failing) or 0
if type(b.error) ~= 'string' then b.error = '' end
if ARGV[2] ~= 'start' then
    b.pass = now
    b.waiting = tonumber(ARGV[4])
end
if ARGV[2] == 'ok' then
    b.ok = now
    b.failing = 0
elseif ARGV[2] == 'fail' then
    b.failing = 1
    b.error = ARGV[5]
    b.error_at = now
end
b.pass = tonumber(b.pass) or 0
b.waiting = tonumber(b.waiting) or 0
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(b))
return now
"""

# Move the mark up and forget the replays below it, if the lease is ours.
# KEYS: lease, mark, replayed.  ARGV: token, new mark.
MARK_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
local old = tonumber(redis.call('GET', KEYS[2]) or '0')
local new = tonumber(ARGV[2])
if new > old then
    redis.call('SET', KEYS[2], ARGV[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])
end
return 1
"""


class PassError(Exception):
    """A pass stopped: Odoo, nginx or Redis could not be used."""


class LeaseLost(PassError):
    """Another instance holds the lease."""


# ------------------------------------------------------------------ settings

def duration(text):
    """'90', '90s', '5m', '1h', '250ms' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(text))
    if not m:
        raise ValueError("not a duration: %r (e.g. 60s, 5m, 1h)" % text)
    n = float(m.group(1))
    return n * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def flag(text):
    return str(text).lower() in ("1", "true", "yes", "on")


def read_secret(path, what):
    """The first line of a secret file, stripped; PassError if unusable."""
    try:
        with open(path, encoding="utf-8") as f:
            value = f.readline().strip()
    except OSError as e:
        raise PassError("cannot read the %s file %s: %s"
                        % (what, path, e.strerror))
    if not value:
        raise PassError("the %s file %s is empty" % (what, path))
    return value


@dataclass
class Settings:
    odoo_url: str = ""
    odoo_db: str = ""
    odoo_user: str = ""
    odoo_key_file: str = ""
    odoo_api: str = "auto"
    subscriber_id: int = 0
    subscriber_url: str = ""
    receive_url: str = ""
    token_file: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    queue: str = "{webhook}"
    interval: float = 60.0
    grace: float = 300.0
    once: bool = False
    page: int = 500
    timeout: float = 30.0
    lease_ttl: float = 0.0      # 0: three intervals, at least 60 s
    ca_file: str = ""
    insecure: bool = False

    def check(self):
        errors = []
        for name in ("odoo_url", "odoo_db", "odoo_user", "odoo_key_file",
                     "receive_url", "token_file"):
            if not getattr(self, name):
                errors.append("--%s is required" % name.replace("_", "-"))
        if self.odoo_api not in ("auto", "xmlrpc", "json2"):
            errors.append("--odoo-api must be auto, xmlrpc or json2")
        if self.subscriber_id < 0:
            errors.append("--subscriber-id must be a record id")
        for name in ("odoo_url", "receive_url"):
            url = getattr(self, name)
            if url and urllib.parse.urlsplit(url).scheme not in ("http",
                                                                 "https"):
                errors.append("--%s must be an http or https URL"
                              % name.replace("_", "-"))
        if self.interval < 0.1 or self.grace < 0 or self.timeout < 0.1:
            errors.append("--interval and --timeout must be at least 0.1 s,"
                          " --grace not negative")
        if not 1 <= self.page <= 10000:
            errors.append("--page must be between 1 and 10000")
        if not self.queue:
            errors.append("--queue must not be empty")
        elif self.redis_cluster and not re.search(r"\{[^}]+\}", self.queue):
            errors.append("with --redis-cluster, --queue needs a hash tag "
                          "({...}): its keys must share a slot")
        return errors

    @property
    def lease(self):
        return self.lease_ttl or max(60.0, 3 * self.interval)


def build_parser():
    e = env_value
    p = argparse.ArgumentParser(
        prog="webhook-reconcile",
        description="Replay through nginx the events Odoo's auto-webhook "
        "addon recorded but the module did not acknowledge.  Every option "
        "also reads an environment variable (named in its help).")
    p.add_argument("--version", action="version", version=__version__)
    o = p.add_argument_group("Odoo (read only)")
    o.add_argument("--odoo-url", default=e("ODOO_URL", ""),
                   help="e.g. https://odoo.example.com; env ODOO_URL")
    o.add_argument("--odoo-db", default=e("ODOO_DB", ""),
                   help="the database; env ODOO_DB")
    o.add_argument("--odoo-user", default=e("ODOO_USER", ""),
                   help="login of a read-only user; env ODOO_USER")
    o.add_argument("--odoo-key-file", default=e("ODOO_KEY_FILE", ""),
                   help="file whose first line is that user's API key; env "
                   "ODOO_KEY_FILE")
    o.add_argument("--odoo-api", default=e("ODOO_API", "auto"),
                   choices=("auto", "xmlrpc", "json2"),
                   help="xmlrpc (Odoo 17, 18), json2 (19 and later), or auto "
                   "(json2 when GET /web/version says 19 or later); env "
                   "ODOO_API (default %(default)s)")
    o.add_argument("--subscriber-id", type=int,
                   default=e("ODOO_SUBSCRIBER_ID", 0, int),
                   help="the webhook.subscriber whose events to reconcile; "
                   "env ODOO_SUBSCRIBER_ID (default: the one whose "
                   "endpoint_url is --subscriber-url)")
    o.add_argument("--subscriber-url", default=e("ODOO_SUBSCRIBER_URL", ""),
                   help="the subscriber's endpoint_url, when Odoo posts to "
                   "another URL than --receive-url; env ODOO_SUBSCRIBER_URL")
    n = p.add_argument_group("nginx and Redis")
    n.add_argument("--receive-url", default=e("RECEIVE_URL", ""),
                   help="the module's receive location; env RECEIVE_URL")
    n.add_argument("--token-file", default=e("RECEIVE_TOKEN_FILE", ""),
                   help="file whose first line is the token named after "
                   "this Odoo database in webhook_token_file; env "
                   "RECEIVE_TOKEN_FILE")
    n.add_argument("--redis", dest="redis_url",
                   default=e("REDIS_URL", Settings.redis_url),
                   help="where the progress and the heartbeat are kept; "
                   "env REDIS_URL (default %(default)s)")
    n.add_argument("--redis-cluster", action="store_true",
                   default=e("REDIS_CLUSTER", False, flag),
                   help="--redis is a node of a Redis Cluster; env "
                   "REDIS_CLUSTER")
    n.add_argument("--queue", default=e("WEBHOOK_QUEUE", Settings.queue),
                   help="the receive location's webhook_queue; env "
                   "WEBHOOK_QUEUE (default %(default)s)")
    r = p.add_argument_group("passes")
    r.add_argument("--interval", type=duration,
                   default=e("RECONCILE_INTERVAL", 60.0, duration),
                   help="between passes; env RECONCILE_INTERVAL (default 60s)")
    r.add_argument("--grace", type=duration,
                   default=e("RECONCILE_GRACE", 300.0, duration),
                   help="age after which a pending or processing event is "
                   "replayed; env RECONCILE_GRACE (default 5m)")
    r.add_argument("--once", action="store_true",
                   default=e("RECONCILE_ONCE", False, flag),
                   help="one pass, then exit: 0 when every event not "
                   "acknowledged was answered 200; env RECONCILE_ONCE")
    r.add_argument("--page", type=int, default=e("RECONCILE_PAGE", 500, int),
                   help="records read from Odoo at a time; env "
                   "RECONCILE_PAGE (default %(default)s)")
    r.add_argument("--timeout", type=duration,
                   default=e("RECONCILE_TIMEOUT", 30.0, duration),
                   help="of each request to Odoo and nginx, for the whole "
                   "of it; env "
                   "RECONCILE_TIMEOUT (default 30s)")
    r.add_argument("--lease-ttl", type=duration,
                   default=e("RECONCILE_LEASE_TTL", 0.0, duration),
                   help="how long a silent instance keeps the lease; env "
                   "RECONCILE_LEASE_TTL (default: 3 intervals, at least 60s)")
    r.add_argument("--ca-file", default=e("RECONCILE_CA_FILE", ""),
                   help="CA certificates for https (Odoo and nginx); env "
                   "RECONCILE_CA_FILE (default: the system's)")
    r.add_argument("--insecure", action="store_true",
                   default=e("RECONCILE_INSECURE", False, flag),
                   help="do not verify https certificates; env "
                   "RECONCILE_INSECURE")
    r.add_argument("--log-level", default=e("LOG_LEVEL", "INFO"),
                   help="env LOG_LEVEL (default %(default)s)")
    return p


# ------------------------------------------------------------------ Odoo

def acknowledged(ev):
    """Whether Odoo's record shows the module took the event."""
    if ev.get("status") != "sent" or ev.get("response_code") != 200:
        return False
    body = ev.get("response_body")
    if not body:
        return True             # the instant path records no body
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("status") in ACCEPTED


def candidates_domain(subscriber_id, after):
    """A domain that holds every event of the subscriber above `after` that
    is not acknowledged (and a few more, which acknowledged() sorts out):
    the addon keeps the answer as json.dumps() of it."""
    not_accepted = []
    for status in ACCEPTED:
        not_accepted += [("response_body", "not like",
                          '"status": "%s"' % status)]
    return [("subscriber_id", "=", subscriber_id), ("id", ">", after),
            "|", "|", ("status", "!=", "sent"),
            ("response_code", "!=", 200),
            "&", ("response_body", "!=", False),
            "&", "&"] + not_accepted


def json_field(value):
    """A fields.Json value as read (the value; false when empty); a text
    holding JSON is taken too."""
    if value is False or value is None:
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def build_payload(ev):
    """The event shape of the addon's _build_payload, without a template."""
    ts = ev.get("timestamp")
    if isinstance(ts, str) and ts:
        try:
            ts = datetime.datetime.strptime(
                ts, "%Y-%m-%d %H:%M:%S").isoformat()
        except ValueError:
            pass
    payload = {"event_id": ev["id"], "model": ev.get("model") or None,
               "record_id": ev.get("record_id"),
               "event": ev.get("event") or None, "timestamp": ts or None,
               "priority": ev.get("priority") or None,
               "category": ev.get("category") or None}
    data = json_field(ev.get("payload"))
    if data:
        payload["data"] = data
    changed = json_field(ev.get("changed_fields"))
    if ev.get("event") == "write" and changed:
        payload["changed_fields"] = changed
    return payload


# ------------------------------------------------------------------ nginx

class Receiver:
    """POSTs to the receive location over one kept-alive connection."""

    def __init__(self, url, timeout, cafile=None, verify=True):
        self.url = url
        self.path = exchange.target(url)
        self.timeout = timeout
        self.ctx = odoo.ssl_context(url, cafile, verify)
        self.conn = None

    def post(self, body, headers):
        """(status, parsed JSON answer or None); OSError or
        http.client.HTTPException when nginx cannot be reached or does not
        answer the whole request within the timeout (TimeoutError).  A kept
        connection that the server closed is replaced once."""
        for attempt in (1, 2):
            fresh = self.conn is None
            if fresh:
                self.conn = exchange.connection(self.url, self.timeout,
                                                self.ctx)
            try:
                status, head, data = exchange.request(
                    self.conn, "POST", self.path, body, headers,
                    self.timeout)
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if fresh or attempt == 2 or isinstance(e, socket.timeout):
                    raise
                continue
            if head.get("Connection", "").lower() == "close":
                self.close()
            try:
                return status, json.loads(data)
            except ValueError:
                return status, None
        raise AssertionError("not reached")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ------------------------------------------------------------------ the reconciler

def redis_client(settings):
    """A client of the Redis of --redis: a Cluster's with --redis-cluster
    (every key of a reconciler has the queue's hash tag: one slot)."""
    kw = {"socket_connect_timeout": 5, "socket_timeout": settings.timeout}
    if settings.redis_cluster:
        from redis.cluster import RedisCluster
        return RedisCluster.from_url(settings.redis_url, **kw)
    return redis.Redis.from_url(settings.redis_url, health_check_interval=30,
                                **kw)


class Reconciler:

    def __init__(self, settings, client=None):
        self.s = settings
        self.redis = client or redis_client(settings)
        self.name = "%s/%s" % (settings.odoo_db, settings.subscriber_id
                               or "?")
        self.token = "%s:%d:%s" % (socket.gethostname(), os.getpid(),
                                   uuid.uuid4().hex[:8])
        self.stopping = False
        self.subscriber_id = settings.subscriber_id
        self.api = None if settings.odoo_api == "auto" else settings.odoo_api
        self.receiver = Receiver(settings.receive_url, settings.timeout,
                                 settings.ca_file or None,
                                 not settings.insecure)
        self.unsaved = set()    # replayed, not yet written to Redis
        self.unreported = 0     # replays not yet in the heartbeat
        self.templates_seen = set()
        self._lease_renewed = 0.0
        self._lease = self.redis.register_script(LEASE_LUA)
        self._release = self.redis.register_script(RELEASE_LUA)
        self._heartbeat = self.redis.register_script(HEARTBEAT_LUA)
        self._mark = self.redis.register_script(MARK_LUA)
        self._set_keys()

    def _set_keys(self):
        q, n = self.s.queue, self.name
        self.k_beats = q + ":reconcilers"
        self.k_mark = "%s:reconcile:%s:mark" % (q, n)
        self.k_replayed = "%s:reconcile:%s:replayed" % (q, n)
        self.k_lease = "%s:reconcile:%s:lease" % (q, n)

    # ---- Odoo

    def odoo_client(self):
        s = self.s
        key = read_secret(s.odoo_key_file, "Odoo API key")
        verify, cafile = not s.insecure, s.ca_file or None
        if self.api is None:
            self.api = odoo.detect_api(s.odoo_url, s.timeout, cafile, verify)
            log.info("Odoo at %s speaks %s", s.odoo_url, self.api)
        return odoo.client(self.api, s.odoo_url, s.odoo_db, s.odoo_user, key,
                           s.timeout, cafile, verify)

    def find_subscriber(self, client):
        url = self.s.subscriber_url or self.s.receive_url
        rows = client.search_read("webhook.subscriber",
                                  [("endpoint_url", "=", url)],
                                  ["id", "name"], order="id")
        if len(rows) != 1:
            raise PassError("%s webhook.subscriber with endpoint_url %s: "
                            "give --subscriber-id" % (
                                "no" if not rows else "%d" % len(rows), url))
        self.subscriber_id = rows[0]["id"]
        self.name = "%s/%d" % (self.s.odoo_db, self.subscriber_id)
        self._set_keys()
        log.info("subscriber %d (%s) has endpoint_url %s",
                 self.subscriber_id, rows[0]["name"], url)

    # ---- the lease

    def hold_lease(self):
        """Take or renew the lease; LeaseLost when another instance has
        it."""
        ttl = int(self.s.lease * 1000)
        if self._lease(keys=[self.k_lease], args=[self.token, ttl]) != 1:
            raise LeaseLost("reconciler %s runs elsewhere (%s)"
                            % (self.name, self._holder()))
        self._lease_renewed = time.monotonic()

    def renew_lease(self):
        if time.monotonic() - self._lease_renewed >= self.s.lease / 3:
            self.hold_lease()

    def _holder(self):
        try:
            holder = self.redis.get(self.k_lease)
        except REDIS_ERRORS:
            return "?"
        return holder.decode("utf-8", "replace") if holder else "none"

    def release_lease(self):
        try:
            self._release(keys=[self.k_lease], args=[self.token])
        except REDIS_ERRORS:
            pass

    # ---- the heartbeat

    def heartbeat(self, outcome, replayed=0, waiting=0, error=""):
        """Write the heartbeat; replays it could not count (Redis down)
        are counted by the next one."""
        self.unreported += replayed
        try:
            self._heartbeat(keys=[self.k_beats],
                            args=[self.name, outcome, self.unreported,
                                  waiting, error[:500]])
        except REDIS_ERRORS as e:
            log.warning("redis: the heartbeat was not written: %s", e)
            return
        self.unreported = 0

    # ---- a pass

    def run_pass(self):
        """One pass.  Returns a summary: found, replayed, waiting, young
        (pending within the grace), the marks, and error (None when the
        pass went through and every event found not acknowledged was
        answered 200; "standby" when another instance holds the lease)."""
        t0 = time.monotonic()
        st = {"found": 0, "replayed": 0, "waiting": 0, "young": 0,
              "mark": None, "new_mark": None, "error": None}
        try:
            client = self.odoo_client()
            token = read_secret(self.s.token_file, "receive token")
            if not self.subscriber_id:
                self.find_subscriber(client)
            self.flush()
            self.hold_lease()
            self._pass(client, token, st)
        except LeaseLost as e:
            log.info("%s: standing by", e)
            st["error"] = "standby"
            return st
        except (PassError, odoo.OdooError) as e:
            st["error"] = str(e)
        except REDIS_ERRORS as e:
            st["error"] = "redis: %s" % e
        if self.stopping and st["error"] is None and st["new_mark"] is None:
            return st           # stopped: the next run goes on
        log.log(logging.INFO if st["error"] is None else logging.WARNING,
                "pass: %d not acknowledged, %d replayed, %d waiting, %d "
                "pending within the grace%s, %.2fs%s", st["found"],
                st["replayed"], st["waiting"], st["young"],
                "" if st["new_mark"] is None else ", mark %d -> %d"
                % (st["mark"], st["new_mark"]), time.monotonic() - t0,
                "" if st["error"] is None else ": " + st["error"])
        if self.subscriber_id:      # else no name yet to report under
            self.heartbeat("ok" if st["error"] is None else "fail",
                           st["replayed"], st["waiting"], st["error"] or "")
        return st

    def _pass(self, client, token, st):
        s = self.s
        mark = st["mark"] = int(self.redis.get(self.k_mark) or 0)
        cutoff = (datetime.datetime.utcnow()
                  - datetime.timedelta(seconds=s.grace)).strftime(
                      "%Y-%m-%d %H:%M:%S")
        # the highest id settled for sure: created before the cutoff
        rows = client.search_read(
            "webhook.event", [("subscriber_id", "=", self.subscriber_id),
                              ("create_date", "<=", cutoff)],
            ["id"], limit=1, order="id desc")
        settled = rows[0]["id"] if rows else mark
        self.blocked = None     # the first id the mark must not pass
        self.stop_reason = None     # nginx cannot take replays now
        after = mark
        while not self.stopping:
            self.renew_lease()
            page = client.search_read(
                "webhook.event",
                candidates_domain(self.subscriber_id, after),
                ("id",) + LIGHT_FIELDS, limit=s.page, order="id")
            if not page:
                break
            after = page[-1]["id"]
            todo = []
            for ev in page:
                if acknowledged(ev):
                    continue
                if ev["status"] in UNSETTLED and (ev["create_date"] or "") \
                        > cutoff:
                    st["young"] += 1
                    self.block(ev["id"])
                    continue
                todo.append(ev["id"])
            todo = self.not_replayed(todo)
            st["found"] += len(todo)
            if todo and self.stop_reason is not None:
                st["waiting"] += len(todo)      # counted, not tried
                self.block(todo[0])
            elif todo:
                self.replay_page(client, token, todo, st)
            if len(page) < s.page:
                break
        if self.stopping:
            return
        self.flush()
        new_mark = settled if self.blocked is None else min(
            settled, self.blocked - 1)
        new_mark = st["new_mark"] = max(new_mark, mark)
        if self._mark(keys=[self.k_lease, self.k_mark, self.k_replayed],
                      args=[self.token, new_mark]) != 1:
            raise LeaseLost("reconciler %s: the lease was taken over during "
                            "the pass (%s)" % (self.name, self._holder()))
        if st["error"] is None and st["waiting"]:
            st["error"] = "%d events not replayed%s" % (
                st["waiting"], "" if self.stop_reason is None
                else ": " + self.stop_reason)

    def block(self, eid):
        if self.blocked is None or eid < self.blocked:
            self.blocked = eid

    def not_replayed(self, ids):
        """The ids among `ids` that no pass has replayed yet."""
        if not ids:
            return ids
        scores = self.redis.zmscore(self.k_replayed, ids)
        return [i for i, sc in zip(ids, scores)
                if sc is None and i not in self.unsaved]

    def replay_page(self, client, token, ids, st):
        """Replay the events `ids` in id order, their payloads read
        PAYLOADS_AT_ONCE at a time."""
        for i in range(0, len(ids), PAYLOADS_AT_ONCE):
            if self.stopping:
                return
            chunk = ids[i:i + PAYLOADS_AT_ONCE]
            if self.stop_reason is not None:
                st["waiting"] += len(chunk)
                continue
            self.replay_events(client.search_read(
                "webhook.event", [("id", "in", chunk)],
                ("id",) + EVENT_FIELDS, order="id"), token, st)

    def replay_events(self, events, token, st):
        """A refusal of one event (400, 413, ...) leaves it waiting and goes
        on; anything else (nginx unreachable, 401, 429, 5xx) stops the
        replays of this pass, the rest counted as waiting."""
        for ev in events:
            if self.stopping:
                return
            if self.stop_reason is not None:
                st["waiting"] += 1
                continue
            self.renew_lease()
            why, stop = self.replay(ev, token)
            if why is None:
                st["replayed"] += 1
                self.remember(ev["id"])
                continue
            st["waiting"] += 1
            self.block(ev["id"])
            log.warning("event %d not replayed: %s", ev["id"], why)
            if stop:
                self.stop_reason = why
            if st["error"] is None or stop:
                st["error"] = why

    def replay(self, ev, token):
        """POST one event.  Returns (None when answered 200, else why not;
        whether to stop the replays)."""
        if ev.get("template_id") and ev["id"] not in self.templates_seen:
            self.templates_seen.add(ev["id"])
            log.warning("event %d has template %s: replayed in the addon's "
                        "event shape, without its template", ev["id"],
                        ev["template_id"][0] if isinstance(
                            ev["template_id"], list) else ev["template_id"])
        body = json.dumps(build_payload(ev)).encode()
        headers = {"Content-Type": "application/json",
                   "Authorization": "Bearer " + token,
                   "User-Agent": "webhook-reconcile/" + __version__,
                   "X-Webhook-Replay": self.name}
        try:
            status, answer = self.receiver.post(body, headers)
        except (OSError, http.client.HTTPException) as e:
            return "nginx unreachable at %s: %s" % (
                odoo.redact(self.s.receive_url), e or type(e).__name__), True
        if status == 200:
            log.debug("event %d replayed: %s", ev["id"],
                      (answer or {}).get("status"))
            return None, False
        why = "nginx answered %d" % status
        if isinstance(answer, dict):
            why += " %s: %s" % (answer.get("error"), answer.get("message"))
        return why, status not in EVENT_REFUSALS

    def remember(self, eid):
        """A replay answered 200: in Redis before the next one, or kept
        here until Redis takes it (it is down: the module spools)."""
        self.unsaved.add(eid)
        try:
            self.flush()
        except REDIS_ERRORS as e:
            log.warning("redis: replay of event %d not recorded yet (%s); "
                        "kept until Redis answers", eid, e)

    def flush(self):
        if self.unsaved:
            self.redis.zadd(self.k_replayed, {str(i): i for i in
                                              self.unsaved})
            self.unsaved.clear()

    # ---- the loop

    def run(self):
        """Passes every interval until stopped (or one with --once).
        Returns the exit code."""
        s = self.s
        log.info("reconciler %s: Odoo %s (database %s, user %s), nginx %s, "
                 "Redis %s, queue %s, every %gs, grace %gs", self.name,
                 odoo.redact(s.odoo_url), s.odoo_db, s.odoo_user,
                 odoo.redact(s.receive_url), redact_url(s.redis_url),
                 s.queue, s.interval, s.grace)
        failures = 0
        started = False
        try:
            while not self.stopping:
                if self._wait_for_lease() is None:
                    return 3
                if self.stopping:
                    break
                if self.subscriber_id and not started:
                    self.heartbeat("start")
                    started = True
                st = self.run_pass()
                if s.once and st["error"] == "standby":
                    continue
                if s.once:
                    print(json.dumps({k: st[k] for k in (
                        "found", "replayed", "waiting", "young", "mark",
                        "new_mark", "error")}), flush=True)
                    return 0 if st["error"] is None else 1
                failures = failures + 1 if st["error"] not in (
                    None, "standby") else 0
                self._sleep(s.interval if not failures else min(
                    s.interval, 5.0 * 2 ** (failures - 1)))
        finally:
            self.release_lease()
            self.receiver.close()
        log.info("reconciler %s stopped", self.name)
        return 0

    def _wait_for_lease(self):
        """Wait until the lease can be ours (another instance's expires or
        is released); with --once, at most one lease TTL.  None: gave up."""
        deadline = time.monotonic() + self.s.lease + self.s.interval
        logged = False
        while not self.stopping:
            try:
                if not self.subscriber_id:
                    return True      # the first pass finds the name
                holder = self.redis.get(self.k_lease)
                if holder is None or holder.decode() == self.token:
                    return True
            except REDIS_ERRORS as e:
                log.warning("redis: %s", e)
                return True          # the pass says so, with backoff
            if not logged:
                log.info("reconciler %s runs elsewhere (%s): standing by",
                         self.name, holder.decode("utf-8", "replace"))
                logged = True
            if self.s.once and time.monotonic() > deadline:
                log.error("reconciler %s still runs elsewhere: giving up",
                          self.name)
                return None
            self._sleep(min(self.s.interval, 1.0))
        return True

    def _sleep(self, seconds):
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.2, end - time.monotonic()))

    def stop(self):
        self.stopping = True


def settings_from(args):
    return Settings(
        odoo_url=args.odoo_url, odoo_db=args.odoo_db,
        odoo_user=args.odoo_user, odoo_key_file=args.odoo_key_file,
        odoo_api=args.odoo_api, subscriber_id=args.subscriber_id,
        subscriber_url=args.subscriber_url, receive_url=args.receive_url,
        token_file=args.token_file, redis_url=args.redis_url,
        redis_cluster=args.redis_cluster,
        queue=args.queue, interval=args.interval, grace=args.grace,
        once=args.once, page=args.page, timeout=args.timeout,
        lease_ttl=args.lease_ttl, ca_file=args.ca_file,
        insecure=args.insecure)


def main(argv=None):
    args = build_parser().parse_args(argv)
    level = logging.getLevelName(args.log_level.upper())
    if not isinstance(level, int):
        raise SystemExit("webhook-reconcile: bad log level %r"
                         % args.log_level)
    logging.basicConfig(stream=sys.stderr, level=level,
                        format="%(asctime)s %(levelname)s webhook-reconcile "
                        "%(message)s")
    settings = settings_from(args)
    errors = settings.check()
    if errors:
        log.error("bad settings: %s", "; ".join(errors))
        return 1
    if settings.insecure:
        log.warning("--insecure: https certificates are not verified")
    reconciler = None
    delay = 1.0
    while reconciler is None:
        try:
            reconciler = Reconciler(settings)
        except REDIS_ERRORS as e:
            # a Cluster client reads the slots at once
            if settings.once:
                log.error("redis: %s", e)
                return 1
            log.warning("redis: %s; retrying in %.0fs", e, delay)
            time.sleep(delay)
            delay = min(delay * 2, settings.interval)

    def on_signal(signum, frame):
        log.info("%s: finishing the current replay, then stopping",
                 signal.Signals(signum).name)
        reconciler.stop()
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return reconciler.run()


if __name__ == "__main__":
    sys.exit(main())
