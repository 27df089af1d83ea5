"""doveauth's HTTP front-end: Dovecot 2.4 `passdb lua`/`userdb lua`.

Dovecot 2.4 has no dict passdb. conf/dovecot24/chatmail-auth.lua asks this
front-end through Dovecot's own Lua HTTP client, over a UNIX socket (mode
0660, group vmail; Dovecot's auth-worker runs as root). The answers come from
lookups.AccountLookups, the same as the dict front-end's. Bodies are
tab-escaped text, Dovecot's own escaping, so the Lua side needs no JSON module:

    POST /passdb  <user> TAB <password>  -> 200 `key TAB value` lines | 404 | 503
    POST /userdb  <user>                 -> 200 `key TAB value` lines | 404 | 503
    GET  /users                          -> 200 one address per line | 503

A passdb answer carries `password` and the `userdb_home/uid/gid` fields that
Dovecot's `userdb prefetch` takes, so a login costs one request. Other input
gets a short text reply: 400 (malformed body), 404 (unknown path), 405 (wrong
method), 413 (body over MAX_BODY), 408 (request not complete within
REQUEST_DEADLINE seconds); the daemon stays up and logs no body.
"""

import io

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import http, server
from twisted.web.resource import Resource

from ..core import dictcodec
from ..core.failures import Temporary
from .lookups import AccountLookups

MAX_BODY = 8192
REQUEST_DEADLINE = 10.0
IDLE_TIMEOUT = 60

# (method, path) -> handler name; the methods allowed per path for 405.
ROUTES = {(b"POST", b"/passdb"): "passdb", (b"POST", b"/userdb"): "userdb",
          (b"GET", b"/users"): "users"}
ALLOWED = {path: method for method, path in ROUTES}


class BadRequest(ValueError):
    """A body that is not what the route expects (answered 400)."""


def parse_fields(body: bytes, count: int, any_bytes: int = 0) -> list:
    """`count` tab-escaped fields separated by TAB (one trailing LF allowed).
    The last `any_bytes` fields may hold bytes that are not UTF-8 (a password:
    the policy refuses it, as when it comes over the dict socket)."""
    text = body.decode("utf-8", "surrogateescape")
    strict = text.rsplit("\t", any_bytes)[0] if any_bytes else text
    if strict != strict.encode("utf-8", "replace").decode("utf-8"):
        raise BadRequest("body is not UTF-8")
    if text.endswith("\n"):
        text = text[:-1]
    parts = text.split("\t")
    if len(parts) != count or "\n" in text:
        raise BadRequest(f"expected {count} tab-separated field(s)")
    try:
        return [dictcodec.tabunescape(p) for p in parts]
    except dictcodec.DictProtocolError as e:
        raise BadRequest(str(e)) from None


def format_fields(fields: dict) -> bytes:
    return "".join(f"{dictcodec.tabescape(str(k))}\t{dictcodec.tabescape(str(v))}\n"
                   for k, v in fields.items()).encode("utf-8")


def passdb_fields(fields: dict) -> dict:
    """The policy's fields as Dovecot's passdb wants them (userdb_* for prefetch)."""
    out = {"password": fields["password"]}
    out.update((f"userdb_{k}", v) for k, v in fields.items() if k != "password")
    return out


def raw_reply(transport, code: int, text: str) -> None:
    """Answer outside a Request (body too large, too slow) and close."""
    body = (text + "\n").encode()
    transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                    b"Connection: close\r\n\r\n%s"
                    % (code, http.RESPONSES.get(code, b"Error"), len(body), body))
    transport.loseConnection()


class AuthResource(Resource):
    isLeaf = True
    log = Logger()

    def __init__(self, lookups: AccountLookups):
        super().__init__()
        self.lookups = lookups

    def render(self, request):
        if getattr(request, "refused", False):
            return server.NOT_DONE_YET  # answered by raw_reply; the connection is closing
        name = ROUTES.get((request.method, request.path))
        if name is None:
            return self._no_route(request)
        try:
            d = getattr(self, "_" + name)(request.content.read())
        except BadRequest as e:
            return reply(request, 400, f"bad request: {e}")
        d.addCallbacks(lambda out: self._answer(request, *out), self._failed,
                       errbackArgs=(request,))
        return server.NOT_DONE_YET

    def _no_route(self, request):
        allowed = ALLOWED.get(request.path)
        if allowed is None:
            return reply(request, 404, "no such path")
        request.setHeader(b"Allow", allowed)
        return reply(request, 405, f"use {allowed.decode()}")

    def _passdb(self, body) -> defer.Deferred:
        user, password = parse_fields(body, 2, any_bytes=1)
        d = defer.maybeDeferred(self.lookups.passdb, user, password)  # inline reads answer at once
        return d.addCallback(lambda f: (200, format_fields(passdb_fields(f))) if f
                             else (404, b"unknown user or refused\n"))

    def _userdb(self, body) -> defer.Deferred:
        (user,) = parse_fields(body, 1)
        d = defer.maybeDeferred(self.lookups.userdb, user)  # inline reads answer at once
        return d.addCallback(lambda f: (200, format_fields(f)) if f else (404, b"unknown user\n"))

    def _users(self, body) -> defer.Deferred:
        d = self.lookups.users()
        return d.addCallback(lambda users: (200, "".join(
            dictcodec.tabescape(u) + "\n" for u in users).encode("utf-8")))

    def _answer(self, request, code: int, body: bytes) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return  # the client went away while we looked it up
        request.write(reply(request, code, body))
        request.finish()

    def _failed(self, failure, request) -> None:
        if not failure.check(Temporary):
            self.log.failure("auth lookup failed", failure)
        self._answer(request, 503, b"temporary failure, try again later\n")


def reply(request, code: int, body) -> bytes:
    """Set the status and headers of a text reply; returns its body."""
    if isinstance(body, str):
        body = (body + "\n").encode("utf-8")
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


class AuthRequest(server.Request):
    """A Request that bounds its body and accepts Dovecot's absolute-form target."""

    refused = False

    def requestReceived(self, command, path, version):
        # Through a UNIX socket Dovecot's HTTP client sends the absolute form
        # (`POST http://doveauth.invalid/passdb`); keep only the path.
        if path.startswith((b"http://", b"https://")):
            parts = path.split(b"/", 3)
            path = b"/" + (parts[3] if len(parts) > 3 else b"")
        super().requestReceived(command, path, version)

    def gotLength(self, length):
        self.received = 0
        if length is not None and length > MAX_BODY:
            self._too_large()
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        self.received += len(data)
        if self.received > MAX_BODY and not self.refused:  # chunked bodies
            self._too_large()
        if not self.refused:
            super().handleContentChunk(data)

    def _too_large(self):
        self.refused = True
        self.content = io.BytesIO()
        raw_reply(self.channel.transport, 413, f"body over {MAX_BODY} bytes")


class AuthChannel(http.HTTPChannel):
    """HTTP/1.1 with a deadline for each request, against clients that trickle."""

    _deadline = None

    def dataReceived(self, data):
        if self._deadline is None and not self.requests:
            self._deadline = self.callLater(REQUEST_DEADLINE, self._too_slow)
        super().dataReceived(data)

    def allContentReceived(self):
        self._cancel_deadline()
        super().allContentReceived()

    def connectionLost(self, reason):
        self._cancel_deadline()
        super().connectionLost(reason)

    def _cancel_deadline(self):
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _too_slow(self):
        self._deadline = None
        raw_reply(self.transport, 408, f"request not complete within {REQUEST_DEADLINE:g}s")


class AuthSite(server.Site):
    """No access log: it would write client addresses to the journal."""

    noisy = False
    protocol = AuthChannel
    requestFactory = AuthRequest

    def __init__(self, lookups: AccountLookups, reactor=None):
        super().__init__(AuthResource(lookups), timeout=IDLE_TIMEOUT, reactor=reactor)

    def log(self, request):
        pass


def auth_site(policy, pool, create_pool=None, reactor=None) -> AuthSite:
    return AuthSite(AccountLookups(policy, pool, create_pool), reactor=reactor)
