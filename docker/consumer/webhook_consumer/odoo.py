"""Read-only clients of Odoo's external API, for the reconciler: XML-RPC
(Odoo 17 and 18: /xmlrpc/2/common authenticate, /xmlrpc/2/object
execute_kw) and JSON-2 (Odoo 19 and later: POST /json/2/<model>/<method>
with "Authorization: bearer <API key>" and "X-Odoo-Database").  Both offer
search_read(model, domain, fields, offset, limit, order) and give the
records as Odoo's read() does.  Standard library only; every request has a
timeout for the whole of it (exchange.within); https certificates are
verified unless told otherwise.

Errors: OdooAuthError (the login or API key refused), OdooAccessError (the
user may not read the model), OdooError (anything else: Odoo unreachable,
an error answer); the message never holds the key."""

import http.client
import json
import ssl
import urllib.parse
import xmlrpc.client

from . import exchange


class OdooError(Exception):
    """Odoo could not be asked, or answered an error."""


class OdooAuthError(OdooError):
    """Odoo refused the login or the API key."""


class OdooAccessError(OdooError):
    """The user may not read what the reconciler reads."""


# Odoo's XML-RPC fault codes (odoo/addons/base/controllers/rpc.py)
FAULT_ACCESS_DENIED = 3
FAULT_ACCESS_ERROR = 4


def ssl_context(url, cafile=None, verify=True):
    """The TLS context of an https URL (None for http)."""
    if not url.lower().startswith("https:"):
        return None
    ctx = ssl.create_default_context(cafile=cafile)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def first_line(text, limit=300):
    """The first line of an error text, cut: for one-line log messages."""
    text = str(text).strip()
    lines = text.splitlines()
    line = lines[-1] if text.startswith("Traceback") and lines else (
        lines[0] if lines else "")
    return line if len(line) <= limit else line[:limit] + "..."


class _Transport(xmlrpc.client.SafeTransport):
    """xmlrpc.client's transport with a TLS context and a timeout for the
    whole of each request (exchange.within)."""

    def __init__(self, timeout, context, https):
        super().__init__(context=context)
        self.timeout = timeout
        self.https = https

    def make_connection(self, host):
        if self.https:
            conn = super().make_connection(host)
        else:
            conn = xmlrpc.client.Transport.make_connection(self, host)
        conn.timeout = self.timeout
        return conn

    def request(self, host, handler, request_body, verbose=False):
        parent = super()
        return exchange.within(
            self.timeout, lambda: self._connection[1],
            lambda: parent.request(host, handler, request_body, verbose))


class _Client:
    """What both clients hold: Odoo's URL, database, login, API key, the
    timeout of a request and the TLS context."""

    def __init__(self, url, db, login, key, timeout=30.0, cafile=None,
                 verify=True):
        self.url = url.rstrip("/")
        self.db = db
        self.login = login
        self._key = key
        self.timeout = timeout
        self._ctx = ssl_context(url, cafile, verify)
        self.uid = None


class XmlRpcClient(_Client):
    """Odoo 17/18: /xmlrpc/2/common and /xmlrpc/2/object."""

    api = "xmlrpc"

    def _proxy(self, service):
        return xmlrpc.client.ServerProxy(
            "%s/xmlrpc/2/%s" % (self.url, service),
            transport=_Transport(self.timeout, self._ctx,
                                 self._ctx is not None), allow_none=False)

    def _call(self, service, method, *params):
        try:
            return getattr(self._proxy(service), method)(*params)
        except xmlrpc.client.Fault as f:
            message = first_line(f.faultString)
            if f.faultCode == FAULT_ACCESS_DENIED:
                self.uid = None
                raise OdooAuthError("Odoo refused the API key of %r: %s"
                                    % (self.login, message))
            if f.faultCode == FAULT_ACCESS_ERROR:
                raise OdooAccessError("Odoo: %s" % message)
            raise OdooError("Odoo answered a fault: %s" % message)
        except xmlrpc.client.ProtocolError as e:
            raise OdooError("Odoo answered HTTP %d %s at %s"
                            % (e.errcode, e.errmsg, redact(e.url)))
        except (OSError, http.client.HTTPException) as e:
            raise OdooError("Odoo unreachable at %s: %s"
                            % (self.url, e or type(e).__name__))

    def authenticate(self):
        uid = self._call("common", "authenticate", self.db, self.login,
                         self._key, {})
        if not uid:
            raise OdooAuthError("Odoo refused the login %r with its API key "
                                "(database %r)" % (self.login, self.db))
        self.uid = uid
        return uid

    def search_read(self, model, domain, fields, offset=0, limit=None,
                    order=None):
        if self.uid is None:
            self.authenticate()
        kw = {"fields": list(fields), "offset": offset}
        if limit is not None:
            kw["limit"] = limit
        if order:
            kw["order"] = order
        return self._call("object", "execute_kw", self.db, self.uid,
                          self._key, model, "search_read", [domain], kw)


class Json2Client(_Client):
    """Odoo 19+: POST /json/2/<model>/<method>."""

    api = "json2"

    def authenticate(self):
        """Nothing to do: the key goes with every request.  The first
        search tells whether Odoo takes it."""
        return None

    def search_read(self, model, domain, fields, offset=0, limit=None,
                    order=None):
        body = {"domain": domain, "fields": list(fields), "offset": offset}
        if limit is not None:
            body["limit"] = limit
        if order:
            body["order"] = order
        return self._post("%s/json/2/%s/search_read" % (self.url, model),
                          body)

    def _post(self, url, body):
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Authorization": "bearer " + self._key,
                   "User-Agent": "webhook-reconcile"}
        if self.db:
            headers["X-Odoo-Database"] = self.db
        try:
            status, _, data = exchange.fetch(
                url, "POST", json.dumps(body).encode(), headers,
                self.timeout, self._ctx)
        except (OSError, http.client.HTTPException) as e:
            raise OdooError("Odoo unreachable at %s: %s" % (self.url, e))
        if not 200 <= status < 300:
            raise self._error(status, data)
        try:
            return json.loads(data)
        except ValueError:
            raise OdooError("Odoo's answer is not JSON: %r" % data[:200])

    def _error(self, status, data):
        try:
            err = json.loads(data)
        except ValueError:
            err = None
        if isinstance(err, dict):
            message = "%s: %s" % (err.get("name"), first_line(
                err.get("message", "")))
        else:
            message = first_line(err if isinstance(err, str)
                                 else data[:200].decode("utf-8", "replace"))
        if status == 401:
            return OdooAuthError("Odoo refused the API key of %r (HTTP "
                                 "401): %s" % (self.login, message))
        if status == 403:
            return OdooAccessError("Odoo (HTTP 403): %s" % message)
        return OdooError("Odoo answered HTTP %d: %s" % (status, message))


def redact(url):
    """A URL without user and password."""
    u = urllib.parse.urlsplit(url)
    if u.username or u.password:
        host = u.hostname + (":%d" % u.port if u.port else "")
        return urllib.parse.urlunsplit((u.scheme, host, u.path, u.query, ""))
    return url


def detect_api(url, timeout=30.0, cafile=None, verify=True):
    """"json2" when Odoo is 19 or later (GET /web/version answers, with
    version_info[0] >= 19), else "xmlrpc"; OdooError when unreachable."""
    try:
        status, _, data = exchange.fetch(
            url.rstrip("/") + "/web/version", "GET", None,
            {"User-Agent": "webhook-reconcile"}, timeout,
            ssl_context(url, cafile, verify))
    except (OSError, http.client.HTTPException) as e:
        raise OdooError("Odoo unreachable at %s: %s" % (redact(url), e))
    if status != 200:
        return "xmlrpc"     # Odoo 17/18 have no /web/version
    try:
        info = json.loads(data)
    except ValueError:
        return "xmlrpc"
    version = info.get("version_info") if isinstance(info, dict) else None
    if isinstance(version, list) and version and isinstance(version[0], int) \
            and version[0] >= 19:
        return "json2"
    return "xmlrpc"


def client(api, url, db, login, key, timeout=30.0, cafile=None, verify=True):
    """The client of `api` ("xmlrpc" or "json2")."""
    cls = {"xmlrpc": XmlRpcClient, "json2": Json2Client}[api]
    return cls(url, db, login, key, timeout, cafile, verify)

