"""Redis reads on the reactor thread: one pipelined connection, hiredis for replies.

Why: redis-py is synchronous, so its reads ran in a thread pool, and the
hand-offs between the reactor and that pool cost ~300 µs of CPU per lookup,
four times the files store's whole lookup (bench/README.md, "Redis"). Here a
read is one buffered write and one parse on the reactor thread; reads made in
the same reactor turn share one round trip. Only reads come this way: writes
(Lua scripts, transactions) keep redis-py in the pool. `rediss://` (TLS) too,
since Twisted's TLS would load pyOpenSSL into every daemon.

`call(*commands)` sends one or more commands and returns a Deferred firing
with their replies (a list when there are several), decoded as UTF-8
(surrogateescape). It fails with:
- StoreUnavailable when Redis cannot be reached, the connection drops, or no
  answer comes within `redis.socket_timeout` (that connection is then cut);
  the outage is logged once by the shared `Health`, as for redis-py;
- AccountDamaged for WRONGTYPE, StoreError for any other error reply.
A read cut by a dropped connection is sent once more on a new one: reads are
idempotent, and a Redis restart drops every open connection (redis-py's
"retry once" does the same). A new connection sends AUTH and SELECT first.
"""

from collections import deque

import hiredis
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.internet.protocol import Factory, Protocol

from ...sendnow import SendNow
from ..errors import AccountDamaged, StoreError, StoreUnavailable


def encode(commands) -> bytes:
    """RESP arrays of bulk strings, one per command."""
    out = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            if not isinstance(arg, bytes):
                arg = str(arg).encode("utf-8", "surrogateescape")
            out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def endpoint_of(reactor, pool_kwargs: dict, timeout: float):
    """Where redis-py's parsed URL points: a UNIX socket or host and port."""
    if pool_kwargs.get("path"):
        return UNIXClientEndpoint(reactor, pool_kwargs["path"], timeout=timeout)
    return TCP4ClientEndpoint(reactor, pool_kwargs.get("host", "localhost"),
                              int(pool_kwargs.get("port", 6379)), timeout=timeout)


def setup_commands(pool_kwargs: dict) -> list:
    """AUTH and SELECT for a new connection, from redis-py's parsed URL."""
    commands = []
    if pool_kwargs.get("password"):
        user = pool_kwargs.get("username")
        auth = ["AUTH", user, pool_kwargs["password"]] if user else [
            "AUTH", pool_kwargs["password"]]
        commands.append(auth)
    if int(pool_kwargs.get("db") or 0):
        commands.append(["SELECT", int(pool_kwargs["db"])])
    return commands


class _Request:
    __slots__ = ("deferred", "payload", "count", "replies", "sent", "resent")

    def __init__(self, deferred, payload, count):
        self.deferred, self.payload, self.count = deferred, payload, count
        self.replies, self.sent, self.resent = [], 0.0, False


class _RedisProtocol(Protocol):
    def __init__(self, link):
        self.link = link
        self.reader = hiredis.Reader(encoding="utf-8", errors="surrogateescape")

    def connectionMade(self):
        self.sender = SendNow(self.transport)  # a read's command leaves at once
        self.link.connected(self)

    def dataReceived(self, data):
        self.reader.feed(data)
        gets, answer = self.reader.gets, self.link.answer
        while self.link.proto is self:  # until the link cuts this connection
            try:
                reply = gets()
            except hiredis.ProtocolError as e:
                self.link.cut(self, f"not Redis' protocol: {e}")
                return
            if reply is False:
                return
            answer(self, reply)

    def connectionLost(self, reason):
        self.link.lost(self, reason.getErrorMessage())


class RedisLink:
    """One connection to Redis for a daemon's reads, made when first needed."""

    def __init__(self, reactor, endpoint, setup, timeout: float, health):
        self.reactor, self.endpoint, self.setup = reactor, endpoint, setup
        self.timeout, self.health = timeout, health
        self.proto = None
        self.connecting = False
        self.closed = False
        self.waiting = deque()  # not sent yet: no connection
        self.pending = deque()  # sent, oldest first: replies come in this order
        self.timer = None

    def call(self, *commands) -> Deferred:
        request = _Request(Deferred(), encode(commands), len(commands))
        if self.proto is not None:
            self._send(request)
        elif self.closed:
            request.deferred.errback(StoreUnavailable("redis connection closed"))
        else:
            self.waiting.append(request)
            self._connect()
        return request.deferred

    def close(self) -> None:
        self.closed = True
        if self.proto is not None:
            self.proto.transport.loseConnection()

    # -- connection ----------------------------------------------------------
    def _connect(self):
        if self.connecting:
            return
        self.connecting = True
        factory = Factory.forProtocol(lambda: _RedisProtocol(self))
        factory.noisy = False  # no "Starting factory" line per (re)connection
        d = self.endpoint.connect(factory)
        d.addErrback(self._not_connected)

    def _not_connected(self, failure):
        self.connecting = False
        waiting, self.waiting = self.waiting, deque()
        self._fail_all(waiting, f"redis unreachable: {failure.getErrorMessage()}")

    def connected(self, proto):
        self.connecting, self.proto = False, proto
        if self.closed:
            proto.transport.loseConnection()
            return
        for command in self.setup:
            request = _Request(Deferred(), encode([command]), 1)
            request.resent = True  # a new connection sends its own
            request.deferred.addErrback(self._setup_failed, proto)
            self._send(request)
        waiting, self.waiting = self.waiting, deque()
        for request in waiting:
            self._send(request)

    def _setup_failed(self, failure, proto):
        self.cut(proto, f"{failure.getErrorMessage()} (AUTH or SELECT)")

    def cut(self, proto, why: str):
        """Drop a connection that cannot be trusted; its reads fail with `why`."""
        if proto is self.proto:
            self._drop(why, resend=False)
        proto.transport.abortConnection()

    def lost(self, proto, why: str):
        if proto is self.proto:
            self._drop(f"redis connection lost: {why}", resend=not self.closed)

    def _drop(self, why, resend):
        self.proto = None
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        pending, self.pending = self.pending, deque()
        failed = []
        for request in pending:
            if resend and not request.resent:
                request.resent, request.replies = True, []
                self.waiting.append(request)
            else:
                failed.append(request)
        self._fail_all(failed, why)
        if self.waiting:
            self._connect()

    def _fail_all(self, requests, why):
        requests = list(requests)
        if requests:
            self.health.failed(StoreUnavailable(why))
        for request in requests:
            request.deferred.errback(StoreUnavailable(why))

    # -- requests ------------------------------------------------------------
    def _send(self, request):
        request.sent = self.reactor.seconds()
        self.pending.append(request)
        self.proto.sender.send(request.payload)
        if self.timer is None:
            self.timer = self.reactor.callLater(self.timeout, self._check_late)

    def _check_late(self):
        self.timer = None
        if not self.pending:
            return
        late = self.pending[0].sent + self.timeout - self.reactor.seconds()
        if late <= 0:
            self.cut(self.proto, f"redis gave no answer within {self.timeout:g} s")
        else:
            self.timer = self.reactor.callLater(late, self._check_late)

    def answer(self, proto, reply):
        if proto is not self.proto or not self.pending:
            self.cut(proto, "redis sent a reply nobody asked for")
            return
        request = self.pending[0]
        request.replies.append(reply)
        if len(request.replies) < request.count:
            return
        self.pending.popleft()
        errors = [r for r in request.replies if isinstance(r, hiredis.ReplyError)]
        if errors:
            request.deferred.errback(_reply_error(errors[0]))
            return
        self.health.ok()
        replies = request.replies
        request.deferred.callback(replies[0] if request.count == 1 else replies)


def _reply_error(error) -> StoreError:
    text = str(error)
    if text.startswith("WRONGTYPE"):
        return AccountDamaged("a key of this account has the wrong type")
    return StoreError(f"redis error: {text}")
