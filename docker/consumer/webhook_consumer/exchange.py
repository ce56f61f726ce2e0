"""One HTTP exchange within a deadline for the whole of it, for the
forwarder's POSTs to BridgeCore and the reconciler's calls to Odoo and to
nginx.  Standard library only.

A socket timeout bounds each read and write, not the exchange: a server
(or a proxy) that sends a byte within each timeout holds a request for as
long as it likes, and one that trickles for ever holds the caller for
ever.  within() runs the exchange in a thread of its own and, past the
deadline, shuts the connection's socket down, which ends it."""

import http.client
import socket
import ssl
import threading
import urllib.parse


def connection(url, timeout, context=None):
    """An http.client connection to the host of `url` (http or https; for
    https `context`, else a default verifying one), each read and write
    bounded by `timeout`."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        return http.client.HTTPSConnection(
            u.hostname, u.port, timeout=timeout,
            context=context or ssl.create_default_context())
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def target(url):
    """The path and query of `url`, as a request line names them."""
    u = urllib.parse.urlsplit(url)
    return (u.path or "/") + ("?" + u.query if u.query else "")


def cut(conn):
    """Shut down and close an http.client connection, whatever it is
    doing: a read or write in another thread ends at once."""
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    conn.close()


def within(timeout, conn, fn):
    """fn()'s result, fn being one exchange on the http.client connection
    `conn` (or on the one a callable `conn` returns once fn has made it):
    connect, request, answer and its body, `timeout` seconds in all.  Past
    them the connection is cut and TimeoutError (an OSError) raised; an
    exception of fn is raised as it is."""
    box = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as e:      # handed to the caller's thread
            box["error"] = e

    worker = threading.Thread(target=run, daemon=True, name="exchange")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        c = conn() if callable(conn) else conn
        if c is not None:
            cut(c)
        raise TimeoutError("no answer to the whole request within %gs"
                           % timeout)
    if "error" in box:
        raise box["error"]
    return box["result"]


def request(conn, method, path, body, headers, timeout, limit=None):
    """(status, headers, body) of one request on the http.client
    connection `conn`, `timeout` seconds in all (within()); at most
    `limit` bytes of the body are read (None: as long as it is; never
    "until the connection closes", which on a kept connection waits for
    the server's keep-alive timeout)."""

    def send():
        conn.request(method, path, body, headers)
        res = conn.getresponse()
        return res.status, res.headers, res.read(limit)

    return within(timeout, conn, send)


def fetch(url, method, body, headers, timeout, context=None, limit=None):
    """request() on a connection of its own to `url`, closed after."""
    conn = connection(url, timeout, context)
    try:
        return request(conn, method, target(url), body, headers, timeout,
                       limit)
    finally:
        conn.close()
