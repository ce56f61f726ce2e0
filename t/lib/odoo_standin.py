#!/usr/bin/python3
"""A stand-in for Odoo's external API, serving the auto-webhook addon's
`webhook.event` and `webhook.subscriber` records, for the reconciler's
tests (t/reconcile-basic.t, t/reconcile-faults.t, scripts/reconcile-100k).
Standard library only; the records live in an SQLite file, so that a
stand-in killed and started again on the same file serves the same data.

    odoo_standin.py --port P --data FILE [--db NAME] [--version 17|18|19]

No Odoo can be installed here.  What it models, from Odoo's documentation
and sources (see the README, "The reconciler", for the list):

  XML-RPC (Odoo 17, 18; deprecated in 19):
    POST /xmlrpc/2/common  version(), authenticate(db, login, key, env):
                           the uid, or False for a wrong login or key
    POST /xmlrpc/2/object  execute_kw(db, uid, key, model, method, args,
                           kw) and execute(): search_read, search_count,
                           search, read; a wrong key: Fault 3 "Access
                           Denied"; a model the user may not read, or any
                           write: Fault 4 (AccessError); a bad domain or
                           field: Fault 1 with a traceback; an unknown
                           database: Fault 1 ("database ... does not
                           exist")
  JSON-2 (Odoo 19+):
    POST /json/2/<model>/<method>  Authorization: bearer <key> (the scheme
                           in any case), X-Odoo-Database, a JSON object of
                           named arguments (ids, context and the method's
                           own); the method's value as JSON; errors as a
                           JSON object {name, message, arguments, context,
                           debug}: 401 Invalid apikey, 403 AccessError,
                           404 unknown model or method, 422 an argument
                           the method does not take, 500 a bad domain

  search_read(domain, fields, offset, limit, order) over the records:
  domains in prefix notation ('&', '|', '!'; terms and'ed by default),
  operators = != < <= > >= in, not in, like, not like, ilike, not ilike,
  =like, =ilike; Odoo's SQL semantics for NULL: `= False` is IS NULL,
  `!= False` IS NOT NULL, and the negative operators (!=, not in,
  not like, not ilike) also match NULL; `like` and `ilike` wrap the value
  in % (its own % and _ are wildcards).  order: "field [asc|desc], ...";
  the default is webhook.event's _order, "priority desc, timestamp desc".

  Values as Odoo's read() gives them, over both protocols: Datetime as
  'YYYY-MM-DD HH:MM:SS' strings in UTC; an empty Char/Text/Datetime/Json
  field as false; an empty Integer as 0; Many2one as [id, display_name] or
  false; Json (payload, changed_fields: fields.Json in the addon) as the
  JSON value itself (object / array).

Control, for the tests (JSON in, JSON out):
    POST /_control {"users": [{"login", "key", "uid", "models": [...]}]}
                   {"subscribers": [{"id", "name", "endpoint_url",
                     "auth_token", "timeout"}]}
                   {"events": [{field: value, ...}]}       -> {"ids": [...]}
                       (defaults: status pending, timestamp and create_date
                       now, priority medium, category business)
                   {"update": [{"id": N, field: value, ...}]}
                   {"cron": {"limit": 100}}  the addon's queue path
                       (process_pending_events): pending events by
                       "priority desc, timestamp asc", each sent to its
                       subscriber as send_event_data sends, the outcome
                       recorded as process_event records it (sent,
                       whatever the answer; 503 "Connection error", 408
                       "Request timeout", 500 for an answer not JSON)
                                                       -> {"sent": {id: code}}
                   {"instant": [ids]}  the instant path (_send_to_subscriber):
                       sent with the response code only for 200/201/204,
                       else failed              -> {"sent": {id: code}}
                   {"delay": seconds}  before each API answer (a slow Odoo)
                   {"trickle": seconds}  each API answer sent a byte at a
                       time, that many seconds apart (a proxy that
                       trickles; 0: at once)
                   {"generate": {"count", "subscriber_id", "unack_every",
                     "first_id"}}  a day of events, as the addon leaves them
                       (every unack_every-th one not acknowledged, in turn
                       503, 401, 408, failed, dead, old pending)
                                                       -> {"unacknowledged": [ids]}
    GET  /_events  every webhook.event row, by id (for comparisons)
    GET  /_log     {"calls": [[protocol, model, method, limit]...],
                    "writes": n, "refused": n}
"""

import argparse
import datetime
import http.client
import http.server
import json
import socket
import sqlite3
import sys
import threading
import time
import traceback
import urllib.parse
import xmlrpc.client

EVENT_FIELDS = {
    # name: (type, relation)
    "id": ("integer", None),
    "model": ("char", None),
    "record_id": ("integer", None),
    "event": ("selection", None),
    "timestamp": ("datetime", None),
    "priority": ("selection", None),
    "category": ("selection", None),
    "status": ("selection", None),
    "retry_count": ("integer", None),
    "max_retries": ("integer", None),
    "next_retry_at": ("datetime", None),
    "error_message": ("text", None),
    "error_type": ("char", None),
    "error_code": ("integer", None),
    "payload": ("json", None),
    "changed_fields": ("json", None),
    "subscriber_id": ("many2one", "webhook.subscriber"),
    "template_id": ("many2one", "webhook.template"),
    "config_id": ("many2one", "webhook.config"),
    "sent_at": ("datetime", None),
    "response_code": ("integer", None),
    "response_body": ("text", None),
    "processing_time": ("float", None),
    "is_archived": ("boolean", None),
    "create_date": ("datetime", None),
    "write_date": ("datetime", None),
}

SUBSCRIBER_FIELDS = {
    "id": ("integer", None),
    "name": ("char", None),
    "endpoint_url": ("char", None),
    "auth_type": ("selection", None),
    "auth_token": ("char", None),
    "timeout": ("integer", None),
    "enabled": ("boolean", None),
    "create_date": ("datetime", None),
    "write_date": ("datetime", None),
}

MODELS = {
    "webhook.event": ("webhook_event", EVENT_FIELDS, "Webhook Event",
                      "priority desc, timestamp desc"),
    "webhook.subscriber": ("webhook_subscriber", SUBSCRIBER_FIELDS,
                           "Webhook Subscriber", "name"),
}

READ_METHODS = ("search_read", "search_count", "search", "read")
WRITE_METHODS = ("create", "write", "unlink", "copy")

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_event (
    id INTEGER PRIMARY KEY, model TEXT, record_id INTEGER, event TEXT,
    timestamp TEXT, priority TEXT, category TEXT, status TEXT,
    retry_count INTEGER, max_retries INTEGER, next_retry_at TEXT,
    error_message TEXT, error_type TEXT, error_code INTEGER, payload TEXT,
    changed_fields TEXT, subscriber_id INTEGER, template_id INTEGER,
    config_id INTEGER, sent_at TEXT, response_code INTEGER,
    response_body TEXT, processing_time REAL, is_archived INTEGER,
    create_date TEXT, write_date TEXT);
CREATE INDEX IF NOT EXISTS webhook_event_sub ON webhook_event (subscriber_id,
    status);
CREATE TABLE IF NOT EXISTS webhook_subscriber (
    id INTEGER PRIMARY KEY, name TEXT, endpoint_url TEXT, auth_type TEXT,
    auth_token TEXT, timeout INTEGER, enabled INTEGER, create_date TEXT,
    write_date TEXT);
CREATE TABLE IF NOT EXISTS standin_user (
    uid INTEGER PRIMARY KEY, login TEXT, key TEXT, models TEXT);
"""


# ------------------------------------------------------------------ errors

class AccessDenied(Exception):
    """odoo.exceptions.AccessDenied: a wrong login or key."""

    def __init__(self, message="Access Denied"):
        super().__init__(message)


class AccessError(Exception):
    """odoo.exceptions.AccessError: the user may not do that."""


class UserError(Exception):
    """odoo.exceptions.UserError."""


class NotFound(Exception):
    """werkzeug's NotFound (JSON-2)."""


class Unprocessable(Exception):
    """werkzeug's UnprocessableEntity (JSON-2): a bad argument."""


def now_str(delta=0):
    t = datetime.datetime.utcnow().replace(microsecond=0)
    return (t + datetime.timedelta(seconds=delta)).strftime(
        "%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------ the data

class Store:
    """The records, in SQLite; one connection, one lock."""

    def __init__(self, path, db):
        self.db = db
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(path, check_same_thread=False,
                                    isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA case_sensitive_like=ON")
        self.conn.executescript(SCHEMA)
        self.calls = []
        self.writes = 0
        self.refused = 0
        self.delay = 0.0
        self.trickle = 0.0

    # ---- users

    def check_key(self, login, key):
        """uid of (login, key), else None; login None: any user's key."""
        with self.lock:
            for uid, ulogin, ukey in self.conn.execute(
                    "SELECT uid, login, key FROM standin_user"):
                if ukey == key and (login is None or login == ulogin
                                    or login == uid):
                    return uid
        return None

    def user_models(self, uid):
        with self.lock:
            row = self.conn.execute(
                "SELECT models FROM standin_user WHERE uid = ?",
                (uid,)).fetchone()
        return json.loads(row[0]) if row else []

    # ---- the ORM methods

    def call(self, protocol, uid, model, method, args, kwargs):
        if model not in MODELS:
            raise NotFound("the model %r does not exist" % model)
        table, fields, label, default_order = MODELS[model]
        if method in WRITE_METHODS:
            self.writes += 1
            raise AccessError(
                "You are not allowed to modify '%s' (%s) records.\n\n"
                "This operation is allowed for the following groups:\n"
                "\t- Administration/Settings" % (label, model))
        if method not in READ_METHODS:
            raise NotFound("The method %r does not exist on the model %r"
                           % (method, model))
        if model not in self.user_models(uid):
            self.refused += 1
            raise AccessError(
                "You are not allowed to access '%s' (%s) records.\n\n"
                "This operation is allowed for the following groups:\n"
                "\t- Administration/Settings" % (label, model))
        params = bind(method, args, kwargs)
        self.calls.append([protocol, model, method, params.get("limit")])
        if method == "read":
            domain = [("id", "in", list(params["ids"]))]
            return self.search_read(table, fields, default_order, domain,
                                    params.get("fields"), 0, None, None)
        if method == "search_count":
            where, values = domain_sql(fields, params.get("domain") or [])
            with self.lock:
                return self.conn.execute(
                    "SELECT count(*) FROM %s WHERE %s" % (table, where),
                    values).fetchone()[0]
        rows = self.search_read(
            table, fields, default_order, params.get("domain") or [],
            ["id"] if method == "search" else params.get("fields"),
            params.get("offset") or 0, params.get("limit"),
            params.get("order"))
        if method == "search":
            return [r["id"] for r in rows]
        return rows

    def search_read(self, table, fields, default_order, domain, names,
                    offset, limit, order):
        names = list(names or [n for n in fields if n != "id"])
        for n in names:
            if n not in fields:
                raise ValueError("Invalid field %r on model %r"
                                 % (n, table.replace("_", ".")))
        where, values = domain_sql(fields, domain)
        sql = "SELECT %s FROM %s WHERE %s ORDER BY %s" % (
            ", ".join(["id"] + [n for n in names if n != "id"]), table,
            where, order_sql(fields, order or default_order))
        if limit is not None and limit is not False:
            sql += " LIMIT %d" % int(limit)
            if offset:
                sql += " OFFSET %d" % int(offset)
        elif offset:
            sql += " LIMIT -1 OFFSET %d" % int(offset)
        with self.lock:
            cur = self.conn.execute(sql, values)
            cols = [c[0] for c in cur.description]
            result = []
            for row in cur:
                rec = {}
                for col, value in zip(cols, row):
                    rec[col] = self.read_value(fields[col], value)
                result.append(rec)
        return result

    def read_value(self, spec, value):
        """A column as Odoo's read() gives it."""
        kind, relation = spec
        if kind == "integer":
            return value or 0
        if kind == "float":
            return value or 0.0
        if kind == "boolean":
            return bool(value)
        if kind == "json":
            return json.loads(value) if value else False
        if kind == "many2one":
            if not value:
                return False
            return [value, self.display_name(relation, value)]
        return value if value not in (None, "") else False

    def display_name(self, relation, rid):
        if relation == "webhook.subscriber":
            row = self.conn.execute(
                "SELECT name FROM webhook_subscriber WHERE id = ?",
                (rid,)).fetchone()
            if row:
                return row[0]
        return "%s,%d" % (relation, rid)

    # ---- control

    def insert(self, table, fields, rec):
        cols = [c for c in rec if c in fields]
        values = [column_value(fields[c], rec[c]) for c in cols]
        with self.lock:
            cur = self.conn.execute(
                "INSERT INTO %s (%s) VALUES (%s)" % (
                    table, ", ".join(cols), ", ".join("?" * len(cols))),
                values)
            return cur.lastrowid

    def update(self, table, fields, rec):
        cols = [c for c in rec if c in fields and c != "id"]
        if not cols:
            return
        with self.lock:
            self.conn.execute(
                "UPDATE %s SET %s WHERE id = ?" % (
                    table, ", ".join("%s = ?" % c for c in cols)),
                [column_value(fields[c], rec[c]) for c in cols]
                + [rec["id"]])

    def event(self, eid):
        rows = self.search_read("webhook_event", EVENT_FIELDS, "id",
                                [("id", "=", eid)], None, 0, None, None)
        return rows[0] if rows else None

    def subscriber(self, sid):
        rows = self.search_read("webhook_subscriber", SUBSCRIBER_FIELDS,
                                "id", [("id", "=", sid)], None, 0, None,
                                None)
        return rows[0] if rows else None


def column_value(spec, value):
    """A value given to the control endpoint as stored in SQLite."""
    kind = spec[0]
    if value is None or value is False and kind != "boolean":
        return None
    if kind == "json":
        return json.dumps(value)
    if kind == "many2one" and isinstance(value, list):
        return value[0]
    if kind == "boolean":
        return 1 if value else 0
    return value


# ------------------------------------------------------------------ domains

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", "like",
             "not like", "ilike", "not ilike", "=like", "=ilike")
NEGATIVE = ("!=", "not in", "not like", "not ilike")


def domain_sql(fields, domain):
    """A domain (prefix notation) as an SQLite condition and its values."""
    values = []
    if not domain:
        return "1", values
    items = [normalize_item(i) for i in domain]
    # the implicit '&' between consecutive terms, as Odoo's normalize
    expected, normalized = 1, []
    for item in items:
        if expected == 0:
            normalized.insert(0, "&")
            expected = 1
        if item in ("&", "|"):
            expected += 1
        elif item != "!":
            expected -= 1
        normalized.append(item)
    pos = [0]

    def parse():
        if pos[0] >= len(normalized):
            raise ValueError("Invalid domain %r" % (domain,))
        item = normalized[pos[0]]
        pos[0] += 1
        if item == "!":
            return "(NOT %s)" % parse()
        if item in ("&", "|"):
            left, right = parse(), parse()
            return "(%s %s %s)" % (left, "AND" if item == "&" else "OR",
                                   right)
        return term_sql(fields, item, values)

    sql = parse()
    if pos[0] != len(normalized):
        raise ValueError("Invalid domain %r" % (domain,))
    return sql, values


def normalize_item(item):
    if isinstance(item, str):
        if item not in ("&", "|", "!"):
            raise ValueError("Invalid domain operator %r" % item)
        return item
    if not isinstance(item, (list, tuple)) or len(item) != 3:
        raise ValueError("Invalid leaf %r" % (item,))
    return tuple(item)


def term_sql(fields, term, values):
    name, op, value = term
    op = op.lower()
    if name not in fields:
        raise ValueError("Invalid field %r in leaf %r" % (name, term))
    if op not in OPERATORS:
        raise ValueError("Invalid leaf %r" % (term,))
    kind = fields[name][0]
    col = name
    if op in ("=", "!=") and value is False and kind != "boolean":
        return "%s IS %sNULL" % (col, "" if op == "=" else "NOT ")
    if op in ("in", "not in"):
        if not isinstance(value, (list, tuple)):
            value = [value]
        present = [column_value(fields[name], v) for v in value
                   if v is not False and v is not None]
        has_null = len(present) != len(value)
        parts = []
        if present:
            values.extend(present)
            parts.append("%s %s (%s)" % (col, op.upper(),
                                         ", ".join("?" * len(present))))
        if op == "in":
            if has_null:
                parts.append("%s IS NULL" % col)
            return "(%s)" % " OR ".join(parts) if parts else "0"
        if not has_null:
            parts.append("%s IS NULL" % col)
        return "(%s)" % " OR ".join(parts) if present else (
            "%s IS NOT NULL" % col if has_null else "1")
    if op in ("like", "not like", "ilike", "not ilike", "=like", "=ilike"):
        pattern = str(value)
        if not op.startswith("="):
            pattern = "%" + pattern + "%"
        lower = "ilike" in op
        values.append(pattern.lower() if lower else pattern)
        sql = "%s %sLIKE ?" % ("lower(%s)" % col if lower else col,
                               "NOT " if op.startswith("not") else "")
    else:
        if isinstance(value, (list, dict)):
            raise ValueError("Invalid leaf %r" % (term,))
        values.append(column_value(fields[name], value)
                      if kind != "boolean" else (1 if value else 0))
        sql = "%s %s ?" % (col, "<>" if op == "!=" else op)
    if op in NEGATIVE:
        sql = "(%s OR %s IS NULL)" % (sql, col)
    return sql


def order_sql(fields, order):
    parts = []
    for item in str(order).split(","):
        words = item.split()
        if not words:
            continue
        if words[0] not in fields or len(words) > 2 or (
                len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise ValueError("Invalid \"order\" specified (%s)" % order)
        parts.append("%s %s" % (words[0], words[1].upper()
                                if len(words) == 2 else "ASC"))
    parts.append("id ASC")
    return ", ".join(parts)


# ------------------------------------------------------------------ arguments

SIGNATURES = {
    "search_read": ("domain", "fields", "offset", "limit", "order"),
    "search_count": ("domain", "limit"),
    "search": ("domain", "offset", "limit", "order"),
    "read": ("ids", "fields", "load"),
}


def bind(method, args, kwargs):
    """The method's arguments by name, as Python would bind them."""
    names = SIGNATURES[method]
    kwargs = {k: v for k, v in kwargs.items() if k != "context"}
    if len(args) > len(names):
        raise Unprocessable("%s() takes %d positional arguments"
                            % (method, len(names)))
    params = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise Unprocessable("got an unexpected keyword argument %r" % k)
        if k in params:
            raise Unprocessable("multiple values for argument %r" % k)
        params[k] = v
    return params


# ------------------------------------------------------------------ the addon

def build_payload(ev):
    """The event shape of the addon's _build_payload (no template)."""
    ts = datetime.datetime.strptime(ev["timestamp"], "%Y-%m-%d %H:%M:%S")
    payload = {
        "event_id": ev["id"], "model": ev["model"],
        "record_id": ev["record_id"], "event": ev["event"],
        "timestamp": ts.isoformat(), "priority": ev["priority"],
        "category": ev["category"],
    }
    if ev["payload"]:
        payload["data"] = ev["payload"]
    if ev["event"] == "write" and ev["changed_fields"]:
        payload["changed_fields"] = ev["changed_fields"]
    return payload


def post(url, body, headers, timeout):
    """requests.post(url, json=body, headers=..., timeout=...), enough of
    it: (status, content) or an exception"""
    u = urllib.parse.urlsplit(url)
    conn_cls = (http.client.HTTPSConnection if u.scheme == "https"
                else http.client.HTTPConnection)
    conn = conn_cls(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("POST", (u.path or "/") + ("?" + u.query if u.query
                                                else ""),
                     json.dumps(body).encode(), headers)
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def send_event_data(sub, payload, user_agent=True):
    """What the addon's send_event_data returns: status_code and body."""
    headers = {"Content-Type": "application/json"}
    if user_agent:
        headers["User-Agent"] = "Odoo-Webhook/1.0"
    if sub["auth_type"] == "bearer" and sub["auth_token"]:
        headers["Authorization"] = "Bearer " + sub["auth_token"]
    try:
        status, content = post(sub["endpoint_url"], payload, headers,
                               sub["timeout"] or 30)
    except socket.timeout:
        return 408, {"error": "Request timeout"}
    except OSError:
        return 503, {"error": "Connection error"}
    try:
        return status, json.loads(content) if content else {}
    except ValueError as e:
        return 500, {"error": str(e)}


class Addon:
    """The addon's two sending paths, over the store."""

    def __init__(self, store):
        self.store = store

    def cron(self, limit=100):
        where, values = domain_sql(EVENT_FIELDS, [("status", "=", "pending")])
        with self.store.lock:
            ids = [r[0] for r in self.store.conn.execute(
                "SELECT id FROM webhook_event WHERE %s ORDER BY priority "
                "DESC, timestamp ASC, id ASC LIMIT %d" % (where, limit),
                values)]
        sent = {}
        for eid in ids:
            ev = self.store.event(eid)
            sub = self.store.subscriber(ev["subscriber_id"][0]) if ev[
                "subscriber_id"] else None
            if sub is None:
                continue
            self.set(eid, status="processing")
            code, body = send_event_data(sub, build_payload(ev))
            self.set(eid, status="sent", sent_at=now_str(),
                     response_code=code, response_body=json.dumps(body))
            sent[eid] = code
        return sent

    def instant(self, ids):
        sent = {}
        for eid in ids:
            ev = self.store.event(eid)
            if ev is None or ev["status"] != "pending":
                continue
            sub = self.store.subscriber(ev["subscriber_id"][0])
            self.set(eid, status="processing")
            payload = dict(ev["payload"] or {})
            payload["_webhook_metadata"] = {
                "event_id": ev["id"], "event_type": ev["event"],
                "model": ev["model"], "record_id": ev["record_id"],
                "timestamp": ev["timestamp"].replace(" ", "T"),
            }
            code, body = send_event_data(sub, payload, user_agent=False)
            if code in (200, 201, 204):
                self.set(eid, status="sent", response_code=code,
                         sent_at=now_str())
            else:
                self.set(eid, status="failed", retry_count=1,
                         error_message="HTTP %d: %s" % (code,
                                                        json.dumps(body)))
            sent[eid] = code
        return sent

    def set(self, eid, **values):
        values["id"] = eid
        values["write_date"] = now_str()
        self.store.update("webhook_event", EVENT_FIELDS, values)

    def generate(self, count, subscriber_id, unack_every, first_id=None):
        """A day of events as the addon leaves them: acknowledged but every
        unack_every-th, which got in turn 503 (nginx down), 401, 408,
        failed (instant path), dead, or is pending since an hour."""
        store = self.store
        kinds = [("sent", 503, {"error": "Connection error"}),
                 ("sent", 401, {"status": "error", "error": "unauthorized",
                                "message": "a valid Bearer token is "
                                "required"}),
                 ("sent", 408, {"error": "Request timeout"}),
                 ("failed", None, None), ("dead", None, None),
                 ("pending", None, None)]
        with store.lock:
            row = store.conn.execute(
                "SELECT coalesce(max(id), 0) FROM webhook_event").fetchone()
        first = first_id or row[0] + 1
        # the day before the last hour: every event is past any grace
        start = datetime.datetime.utcnow().replace(microsecond=0) \
            - datetime.timedelta(hours=25)
        unack, rows = [], []
        for n in range(count):
            eid = first + n
            t = (start + datetime.timedelta(seconds=n * 86400 // max(count, 1))
                 ).strftime("%Y-%m-%d %H:%M:%S")
            data = {"id": 1000 + n, "name": "S%05d" % n, "state": "sale",
                    "partner_id": [27, "Deco Addict"],
                    "amount_total": 1483.5 + n, "write_date": t}
            status, code, body = "sent", 200, json.dumps(
                {"status": "queued", "id": "%032x" % eid,
                 "priority": "medium"})
            if unack_every and n % unack_every == unack_every - 1:
                status, code, ans = kinds[len(unack) % len(kinds)]
                body = json.dumps(ans) if ans is not None else None
                unack.append(eid)
            rows.append((eid, "sale.order", 1000 + n, "write", t,
                         ("high", "medium", "low")[n % 3], "business",
                         status, json.dumps(data),
                         json.dumps(["state", "amount_total"]),
                         subscriber_id, t if status == "sent" else None,
                         code, body, t, t))
            if len(rows) == 5000 or n == count - 1:
                with store.lock:
                    store.conn.execute("BEGIN")
                    store.conn.executemany(
                        "INSERT INTO webhook_event (id, model, record_id, "
                        "event, timestamp, priority, category, status, "
                        "payload, changed_fields, subscriber_id, sent_at, "
                        "response_code, response_body, create_date, "
                        "write_date) VALUES (%s)" % ", ".join("?" * 16),
                        rows)
                    store.conn.execute("COMMIT")
                rows = []
        return unack


# ------------------------------------------------------------------ HTTP

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = None
    addon = None
    version = 17

    def log_message(self, fmt, *args):
        sys.stderr.write("odoo-standin: %s\n" % (fmt % args))

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body, ctype="application/json; charset=utf-8"):
        if not isinstance(body, bytes):
            body = body.encode()
        if getattr(self, "trickling", 0):
            return self.send_trickling(status, body, ctype)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_trickling(self, status, body, ctype):
        raw = ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
               "Connection: close\r\n\r\n"
               % (status, self.responses.get(status, ("",))[0], ctype,
                  len(body))).encode() + body
        self.close_connection = True
        try:
            for i in range(len(raw)):
                self.wfile.write(raw[i:i + 1])
                self.wfile.flush()
                time.sleep(self.trickling)
        except OSError:
            pass                        # the client gave up

    def do_GET(self):
        if self.path == "/_log":
            s = self.store
            return self.send(200, json.dumps({
                "calls": s.calls, "writes": s.writes, "refused": s.refused}))
        if self.path == "/_events":
            rows = self.store.search_read("webhook_event", EVENT_FIELDS, "id",
                                          [], None, 0, None, "id")
            return self.send(200, json.dumps(rows))
        if self.path == "/web/version" and self.version >= 19:
            # new in Odoo 19 (the migration notes of the JSON-2 API)
            return self.send(200, json.dumps({
                "version_info": [self.version, 0, 0, "final", 0, ""],
                "version": "%d.0" % self.version}))
        self.send(404, json.dumps("Not Found"))

    def do_POST(self):
        path = self.path
        try:
            if path == "/_control":
                return self.control(json.loads(self.body() or b"{}"))
            if self.store.delay and not path.startswith("/_"):
                time.sleep(self.store.delay)
            if not path.startswith("/_"):
                self.trickling = self.store.trickle
            if path.startswith("/xmlrpc/2/"):
                return self.xmlrpc(path[len("/xmlrpc/2/"):], self.body())
            if path.startswith("/json/2/"):
                return self.json2(path[len("/json/2/"):], self.body())
        except Exception:
            traceback.print_exc()
            return self.send(500, json.dumps("standin error"))
        self.send(404, json.dumps("Not Found"))

    # ---- XML-RPC

    def xmlrpc(self, service, data):
        try:
            params, method = xmlrpc.client.loads(data)
            result = self.xmlrpc_dispatch(service, method, params)
            out = xmlrpc.client.dumps((result,), methodresponse=True,
                                      allow_none=False)
        except AccessDenied as e:
            out = xmlrpc.client.dumps(xmlrpc.client.Fault(3, str(e)))
        except AccessError as e:
            out = xmlrpc.client.dumps(xmlrpc.client.Fault(4, str(e)))
        except UserError as e:
            out = xmlrpc.client.dumps(xmlrpc.client.Fault(2, str(e)))
        except Exception:
            out = xmlrpc.client.dumps(xmlrpc.client.Fault(
                1, traceback.format_exc()))
        self.send(200, out, "text/xml; charset=utf-8")

    def xmlrpc_dispatch(self, service, method, params):
        store = self.store
        if service == "common":
            if method == "version":
                v = self.version
                return {"server_version": "%d.0" % v, "server_version_info":
                        [v, 0, 0, "final", 0, ""], "server_serie": "%d.0" % v,
                        "protocol_version": 1}
            if method in ("authenticate", "login"):
                db, login, key = params[0], params[1], params[2]
                self.check_db(db)
                return store.check_key(login, key) or False
            raise Exception("Method not found: %s" % method)
        if service != "object" or method not in ("execute_kw", "execute"):
            raise Exception("Method not found: %s" % method)
        db, uid, key, model, name = params[:5]
        self.check_db(db)
        if store.check_key(uid, key) != uid:
            raise AccessDenied()
        if method == "execute_kw":
            args = params[5] if len(params) > 5 else []
            kwargs = params[6] if len(params) > 6 else {}
        else:
            args, kwargs = list(params[5:]), {}
        try:
            return store.call("xmlrpc", uid, model, name, args, kwargs)
        except (NotFound, Unprocessable) as e:
            raise Exception(str(e))

    def check_db(self, db):
        if db != self.store.db:
            raise Exception('psycopg2.OperationalError: connection to server '
                            'failed: FATAL:  database "%s" does not exist'
                            % db)

    # ---- JSON-2

    def json2(self, rest, data):
        parts = rest.split("/")
        try:
            if len(parts) != 2:
                raise NotFound("Did you mean POST /json/2/<model>/<method>?")
            scheme, _, key = (self.headers.get("Authorization") or ""
                              ).partition(" ")
            uid = store_uid = None
            if scheme.lower() == "bearer" and key:
                store_uid = self.store.check_key(None, key.strip())
            db = self.headers.get("X-Odoo-Database")
            if db is not None and db != self.store.db:
                raise NotFound("database %r not found" % db)
            if store_uid is None:
                return self.json2_error(401, "werkzeug.exceptions."
                                        "Unauthorized", "Invalid apikey")
            uid = store_uid
            try:
                body = json.loads(data) if data else {}
            except ValueError as e:
                return self.json2_error(400, "werkzeug.exceptions."
                                        "BadRequest", "could not parse the "
                                        "body as json: %s" % e)
            if not isinstance(body, dict):
                body = {}
            ids = body.pop("ids", None)
            body.pop("context", None)
            if ids:
                body["ids"] = ids
            result = self.store.call("json2", uid, parts[0], parts[1], [],
                                     body)
            return self.send(200, json.dumps(result, ensure_ascii=False))
        except NotFound as e:
            return self.json2_error(404, "werkzeug.exceptions.NotFound",
                                    str(e))
        except Unprocessable as e:
            return self.json2_error(422, "werkzeug.exceptions."
                                    "UnprocessableEntity", str(e))
        except AccessError as e:
            return self.json2_error(403, "odoo.exceptions.AccessError",
                                    str(e))
        except Exception as e:
            return self.json2_error(500, "%s.%s" % (type(e).__module__,
                                                     type(e).__name__),
                                    str(e))

    def json2_error(self, status, name, message):
        self.send(status, json.dumps({
            "name": name, "message": message,
            "arguments": [message, status] if name.startswith("werkzeug")
            else [message], "context": {},
            "debug": "Traceback (most recent call last):\n  ...\n%s: %s\n"
            % (name, message)}))

    # ---- control

    def control(self, c):
        store, out = self.store, {}
        for u in c.get("users", []):
            with store.lock:
                store.conn.execute(
                    "INSERT OR REPLACE INTO standin_user VALUES (?, ?, ?, ?)",
                    (u["uid"], u["login"], u["key"],
                     json.dumps(u.get("models", list(MODELS)))))
        for s in c.get("subscribers", []):
            rec = {"auth_type": "bearer", "timeout": 30, "enabled": True,
                   "create_date": now_str(), "write_date": now_str()}
            rec.update(s)
            with store.lock:
                store.conn.execute("DELETE FROM webhook_subscriber WHERE "
                                   "id = ?", (rec["id"],))
            store.insert("webhook_subscriber", SUBSCRIBER_FIELDS, rec)
        if "events" in c:
            ids = []
            for e in c["events"]:
                t = now_str()
                rec = {"status": "pending", "timestamp": t, "create_date": t,
                       "write_date": t, "priority": "medium",
                       "category": "business", "retry_count": 0,
                       "max_retries": 5, "is_archived": False}
                rec.update(e)
                ids.append(store.insert("webhook_event", EVENT_FIELDS, rec))
            out["ids"] = ids
        for u in c.get("update", []):
            store.update("webhook_event", EVENT_FIELDS, u)
        if "cron" in c:
            out["sent"] = self.addon.cron(c["cron"].get("limit", 100))
        if "instant" in c:
            out["sent"] = self.addon.instant(c["instant"])
        if "generate" in c:
            g = c["generate"]
            out["unacknowledged"] = self.addon.generate(
                g["count"], g["subscriber_id"], g.get("unack_every", 100),
                g.get("first_id"))
        if "delay" in c:
            store.delay = float(c["delay"])
        if "trickle" in c:
            store.trickle = float(c["trickle"])
        if c.get("reset_log"):
            store.calls, store.writes, store.refused = [], 0, 0
        self.send(200, json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", required=True, help="the SQLite file")
    ap.add_argument("--db", default="odoo-prod")
    ap.add_argument("--version", type=int, default=17,
                    help="the Odoo version it claims: 19 and later answer "
                    "GET /web/version")
    args = ap.parse_args()
    Handler.version = args.version
    Handler.store = Store(args.data, args.db)
    Handler.addon = Addon(Handler.store)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port),
                                             Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
