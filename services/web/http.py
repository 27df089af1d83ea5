"""The web front's wire: twisted.web requests in, documents and `/new` answers out.

    GET|HEAD /                                   index page with the DCACCOUNT QR code
    GET|HEAD /info.html, /privacy.html           the operator's pages
    GET|HEAD /.well-known/autoconfig/mail/config-v1.1.xml, /mail/config-v1.1.xml
    GET|HEAD /.well-known/mta-sts.txt
    POST|GET /new[?token=T]                      {"email": ..., "password": ...}

Every bad request gets a 4xx with a line of text, never a dropped connection:
unknown path 404, wrong method 405 (with Allow), a body over MAX_BODY 413
(answered as soon as the length is known, then the connection is closed),
a request line or header over 16 KiB 431, a body that is not empty, a form or
a JSON object 415/400, a malformed token
400, too many `/new` from one client 429 (with Retry-After). A refusal of the
domain is 403 (closed, invite-only, bad invite) or 503 (busy), a store outage
503. Invites are redeemed by POST only: link previews fetch with GET.

No access log (QuietSite), and no client address, token or password in any
log line; the client address reaches only the throttle.
"""

import json
import math
import re

from prometheus_client import Counter, Histogram
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.http import HTTPChannel
from twisted.web.server import NOT_DONE_YET, Request

from ..core.failures import Refused, Temporary
from ..core.metrics import timed
from ..core.website import QuietSite
from ..core.store import StoreError
from .policy import BUSY, MAX_TOKEN_LENGTH

MAX_BODY = 4096
TIMEOUT = 20  # seconds a connection may stay idle (slow clients)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,%d}" % MAX_TOKEN_LENGTH)
_BUSY = {r.value for r in BUSY} | {"busy"}

REQUESTS = Counter("chatmail_web_requests_total", "HTTP requests answered",
                   ["page", "code"])
CREATED = Counter("chatmail_web_accounts_created_total", "accounts created by /new",
                  ["mode"])
REFUSED = Counter("chatmail_web_new_refusals_total", "/new requests refused", ["reason"])
NEW_SECONDS = Histogram("chatmail_web_new_seconds", "/new request to answer, hashing included")

log = Logger()


class WebRequest(Request):
    """A request whose body may not exceed MAX_BODY bytes (413 at once)."""

    too_large = False
    _received = 0

    def gotLength(self, length):
        if length is not None and length > MAX_BODY:
            self._refuse_body()
        super().gotLength(None if self.too_large else length)

    def handleContentChunk(self, data):
        self._received += len(data)
        if not self.too_large and self._received > MAX_BODY:
            self._refuse_body()
        if not self.too_large:
            super().handleContentChunk(data)

    def _refuse_body(self):
        self.too_large = True
        text = f"request body too large (at most {MAX_BODY} bytes)\n".encode()
        self.channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
        self.channel.transport.loseConnection()
        REQUESTS.labels("other", "413").inc()

    def requestReceived(self, command, path, version):
        if not self.too_large:
            super().requestReceived(command, path, version)


class WebChannel(HTTPChannel):
    """HTTPChannel, but a request line or header over MAX_LENGTH (16 KiB) is
    answered 431 before the connection closes (Twisted just drops it)."""

    def lineLengthExceeded(self, line):
        text = b"request line or header field too long\n"
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(text), text))
        REQUESTS.labels("other", "431").inc()
        self.loseConnection()


class BadRequest(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code


PHRASES = {413: b"Content Too Large", 415: b"Unsupported Media Type",
           429: b"Too Many Requests"}


def answer(request, page: str, code: int, body: bytes, content_type: str, **headers) -> bytes:
    request.setResponseCode(code, PHRASES.get(code))
    request.setHeader(b"content-length", b"%d" % len(body))
    request.setHeader(b"content-type", content_type.encode())
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    for name, value in headers.items():
        request.setHeader(name.replace("_", "-").encode(), str(value).encode())
    REQUESTS.labels(page, str(code)).inc()
    return body


def text(request, page, code, message, **headers) -> bytes:
    return answer(request, page, code, (message + "\n").encode(), "text/plain; charset=utf-8",
                  **headers)


CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"


class Front(Resource):
    """The whole site as one leaf: dispatch by path table."""

    isLeaf = True

    def __init__(self, pages, mode_of, new_accounts, pool, throttle, behind_proxy=False):
        super().__init__()
        self.pages, self.mode_of, self.new_accounts = pages, mode_of, new_accounts
        self.pool, self.throttle, self.behind_proxy = pool, throttle, behind_proxy
        html, xml = "text/html; charset=utf-8", "application/xml; charset=utf-8"
        self.documents = {
            b"/info.html": ("info", lambda: pages.info, html),
            b"/privacy.html": ("privacy", lambda: pages.privacy, html),
            b"/.well-known/autoconfig/mail/config-v1.1.xml": ("autoconfig", lambda: pages.autoconfig, xml),
            b"/mail/config-v1.1.xml": ("autoconfig", lambda: pages.autoconfig, xml),
            b"/.well-known/mta-sts.txt": ("mta_sts", lambda: pages.mta_sts, "text/plain; charset=utf-8"),
        }

    def render(self, request):
        try:
            return self.route(request)
        except Exception:  # the one boundary: a bug answers 500, never a traceback page
            log.failure("web request failed")
            return text(request, "other", 500, "internal error")

    def route(self, request):
        if request.path == b"/new":
            return self.new(request)
        if request.path in (b"/", b"/index.html"):
            return self.document(request, "index", lambda: self.index(), "text/html; charset=utf-8")
        found = self.documents.get(request.path)
        if found is None:
            return text(request, "other", 404, "not found")
        return self.document(request, *found)

    def index(self):
        return self.pages.index[self.mode_of()]

    def document(self, request, page, body, content_type):
        if request.method not in (b"GET", b"HEAD"):
            return text(request, page, 405, "method not allowed", allow="GET, HEAD")
        return answer(request, page, 200, body(), content_type, content_security_policy=CSP,
                      cache_control="max-age=60")

    # -- /new ---------------------------------------------------------------
    def new(self, request):
        if request.method not in (b"POST", b"GET"):
            return text(request, "new", 405, "method not allowed", allow="POST, GET")
        try:
            token = new_request_token(request)
        except BadRequest as e:
            return text(request, "new", e.code, str(e))
        retry = self.throttle.check(self.client_address(request))
        if retry:
            REFUSED.labels("throttled").inc()
            return text(request, "new", 429, "too many new accounts from your address; "
                        "try again later", retry_after=math.ceil(retry))
        d = timed(self.pool.run(self.new_accounts.create, token), NEW_SECONDS)
        d.addCallbacks(self._created, self._failed)
        d.addCallback(self._reply, request)
        return NOT_DONE_YET

    def client_address(self, request) -> str:
        if self.behind_proxy:
            forwarded = request.getHeader(b"x-forwarded-for")
            if forwarded:
                return forwarded.split(b",")[-1].strip().decode("ascii", "replace")
        return getattr(request.getClientAddress(), "host", "unix")

    def _created(self, result):
        if isinstance(result, Refused):
            REFUSED.labels(result.reason).inc()
            return (503 if result.reason in _BUSY else 403), result.text, None
        CREATED.labels(self.mode_of()).inc()
        body = json.dumps({"email": result.email, "password": result.password}).encode()
        return 200, None, body

    def _failed(self, failure):
        if failure.check(StoreError, Temporary):
            REFUSED.labels("store_unavailable").inc()
            log.warn("/new: store unavailable: {why}", why=failure.getErrorMessage())
            return 503, "The relay cannot create accounts right now; try again later.", None
        log.failure("/new failed", failure)
        return 500, "internal error", None

    def _reply(self, outcome, request):
        code, message, body = outcome
        if request._disconnected or request.finished:
            return
        if body is not None:
            request.write(answer(request, "new", code, body, "application/json",
                                 cache_control="no-store"))
        else:
            request.write(text(request, "new", code, message, cache_control="no-store",
                               **({"retry_after": 60} if code == 503 else {})))
        request.finish()


def new_request_token(request):
    """The invite token of a /new request (query, form or JSON body), or None."""
    tokens = list(request.args.get(b"token", []))
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    body = request.content.read() if request.content is not None else b""
    if content_type == b"application/json" and body.strip():
        tokens += _json_tokens(body)
    elif body.strip() and content_type != b"application/x-www-form-urlencoded":
        raise BadRequest(415, "send no body, a form or a JSON object")
    if len(tokens) > 1:
        raise BadRequest(400, "give one token")
    if not tokens:
        return None
    token = tokens[0].decode("ascii", "replace") if isinstance(tokens[0], bytes) else tokens[0]
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise BadRequest(400, "malformed invite token")
    if request.method == b"GET":
        raise BadRequest(405, "invites are redeemed with POST (Delta Chat does this)")
    return token


def _json_tokens(body: bytes):
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "JSON body must be an object")
    return [data["token"]] if "token" in data else []


def make_site(front, reactor=None) -> QuietSite:
    site = QuietSite(front, timeout=TIMEOUT, reactor=reactor)
    site.requestFactory = WebRequest
    site.protocol = WebChannel
    site.displayTracebacks = False
    return site

