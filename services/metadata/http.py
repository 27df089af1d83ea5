"""POSTing a device token to the notification service: Python's http.client
and ssl, on the poster's own threads.

Each of `metadata.notify_concurrency` threads makes one POST at a time over a
kept-alive connection. TLS is verified as a browser does (hostname and
chain) against the system CAs plus, for a private endpoint,
`metadata.notify_ca_file`, read once at start. A request is given up after
`metadata.notify_timeout` seconds (each socket operation, and the whole
request). The body is the token as UTF-8 text, as notifications.delta.chat
expects; the answer is the HTTP status code.

Why not Twisted's HTTP client: its TLS is pyOpenSSL's, which costs metadata
the cryptography bindings in memory, and through a memory BIO more CPU per
POST than the ssl module (bench/README.md); the daemon then runs without
pyOpenSSL, like doveauth, lastlogin and filtermail (services/launch.py).
"""

import http.client
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

from twisted.internet import defer

HEADERS = {"Content-Type": "text/plain; charset=utf-8", "User-Agent": "chatmail-metadata"}
IDLE_LIMIT = 60.0  # seconds a kept-alive connection may wait unused; servers close sooner
# What a kept-alive connection the server has closed meanwhile fails with, before
# any answer: the POST is sent once more on a new connection.
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
         ConnectionAbortedError, ssl.SSLEOFError, ssl.SSLZeroReturnError)


def tls_context(ca_file=None) -> ssl.SSLContext:
    """The system CAs, plus the certificates of `ca_file`; ValueError naming it."""
    context = ssl.create_default_context()
    if ca_file:
        try:  # fail at start-up, naming the file, not at the first notification
            context.load_verify_locations(ca_file)
        except (ssl.SSLError, OSError):
            raise ValueError(f"metadata.notify_ca_file: no usable certificates in {ca_file}")
    return context


class HttpPoster:
    def __init__(self, reactor, url: str, ca_file, timeout: float, pool):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"metadata.notify_url: not an http(s) URL: {url}")
        self.reactor, self.timeout, self.pool = reactor, timeout, pool
        self.host, self.port = parts.hostname, parts.port
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.context = tls_context(ca_file) if parts.scheme == "https" else None
        self._lock = threading.Lock()
        self._idle = []  # (last used, connection), the most recent last
        self._open = set()  # every connection not closed: close() shuts them down

    def post(self, token: str) -> defer.Deferred:
        """POST the token; fires with the status code, fails on timeout or error."""
        d = self.pool.run(self._post, token.encode("utf-8", "surrogateescape"),
                          time.monotonic() + self.timeout)
        return d.addTimeout(self.timeout, self.reactor)

    def _post(self, body: bytes, deadline: float) -> int:
        # A POST that waited for a thread (the others held by a service that
        # does not answer) until its time was up has failed already: it is
        # not sent late, so such waits cannot pile up.
        if time.monotonic() >= deadline:
            raise TimeoutError("no thread free before the notification timeout")
        conn, reused = self._take()
        try:
            return self._exchange(conn, body)
        except STALE:
            if not reused:
                raise
        # The server closed the kept-alive connection meanwhile (before answering,
        # as servers do when it idled): once more, on a new connection.
        return self._exchange(self._new(), body)

    def _exchange(self, conn, body: bytes) -> int:
        try:
            conn.request("POST", self.target, body, HEADERS)
            response = conn.getresponse()
            response.read()  # small; read whole, so the connection can carry the next
        except BaseException:
            self._discard(conn)
            raise
        if response.will_close:
            self._discard(conn)
        else:
            with self._lock:
                self._idle.append((time.monotonic(), conn))
        return response.status

    def _take(self):
        """(connection, whether it was kept alive) for one POST: the one used
        last, while those idle too long are closed."""
        now, expired, conn = time.monotonic(), [], None
        with self._lock:
            while self._idle and now - self._idle[0][0] >= IDLE_LIMIT:
                expired.append(self._idle.pop(0)[1])
            if self._idle:
                conn = self._idle.pop()[1]
        for old in expired:
            self._discard(old)
        return (conn, True) if conn is not None else (self._new(), False)

    def _new(self):
        if self.context is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        else:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                               context=self.context)
        with self._lock:
            self._open.add(conn)
        return conn

    def _discard(self, conn) -> None:
        with self._lock:
            self._open.discard(conn)
        conn.close()

    def close(self) -> defer.Deferred:
        """Close every connection; a POST in flight then fails at once."""
        with self._lock:
            conns, self._open, self._idle = list(self._open), set(), []
        for conn in conns:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            conn.close()
        return defer.succeed(None)
