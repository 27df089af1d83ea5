"""Reinjection: hand an accepted message back to Postfix over SMTP, unchanged.

`ReinjectPool.deliver` takes the parsed `mail.Mail` (and header fields to
prepend, such as DKIM-Signature). The envelope goes on as received: MAIL FROM (the null sender too) with the
ESMTP parameters the reinject service announces (SIZE, BODY=8BITMIME,
SMTPUTF8, DSN's RET/ENVID/NOTIFY/ORCPT), every RCPT, and the XFORWARD
attributes (Postfix's XFORWARD_README) so Postfix logs the original client.
The message is streamed from memory in chunks (a pull producer) with
dot-stuffing redone (RFC 5321 section 4.5.2).

Any reply other than the expected one, a lost connection or a timeout fails
the Deferred with `ReinjectError`; the filter answers its client 451, so the
message stays with Postfix and is retried: a message is never answered 250
before Postfix has answered 250 to the reinjection.

`ReinjectPool` reuses connections: after a completed transaction the
connection goes back to an idle list (RFC 5321 allows the next MAIL without
RSET) and is closed after `IDLE_SECONDS`. A reused connection that turns out
to be dead before the message was sent is replaced once by a new one.
"""

from collections import deque

from twisted.internet import defer
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.internet.interfaces import IPullProducer
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from ..core.failures import Temporary
from .smtp import Reply, no_delay, stuffed_parts

CHUNK = 1 << 16
IDLE_SECONDS = 30
# parameters passed on only when the reinject service announces the extension
PARAM_EXTENSIONS = {"SIZE": "SIZE", "BODY": "8BITMIME", "SMTPUTF8": "SMTPUTF8",
                    "RET": "DSN", "ENVID": "DSN", "NOTIFY": "DSN", "ORCPT": "DSN"}


class ReinjectError(Temporary):
    """The reinjection did not end in 250 (so the filter answers 451). `lost`: the
    connection was gone; `sent`: DATA had begun (a retry could duplicate it)."""

    def __init__(self, why: str, sent: bool = False, lost: bool = False):
        super().__init__(why)
        self.sent = sent
        self.lost = lost


@implementer(IPullProducer)
class _Streamer:
    """Write the message in CHUNK-sized slices as the transport drains."""

    def __init__(self, transport, parts):
        self.transport = transport
        self.views = deque(memoryview(p) for p in parts if len(p))
        self.last = bytes(self.views[-1][-2:]) if self.views else b"\r\n"

    def resumeProducing(self):
        if not self.views:
            self.transport.unregisterProducer()
            ending = b".\r\n" if self.last.endswith(b"\r\n") else b"\r\n.\r\n"
            return self.transport.write(ending)
        view = self.views[0]
        self.transport.write(bytes(view[:CHUNK]))
        if len(view) > CHUNK:
            self.views[0] = view[CHUNK:]
        else:
            self.views.popleft()

    def stopProducing(self):
        self.views.clear()


class ReinjectClient(LineReceiver):
    """One SMTP client connection to Postfix's reinject service."""

    log = Logger()
    delimiter = b"\n"
    MAX_LENGTH = 8192

    def __init__(self, hostname: str):
        self.hostname = hostname
        self.waiting = deque()  # Deferreds for replies in order
        self.lines = []
        self.extensions = {}
        self.ready = defer.Deferred()
        self.closed = False
        self.idle_timer = None
        self.on_expire = None  # set while parked in a pool

    def connectionMade(self):
        no_delay(self.transport)
        d = self._expect_reply()
        d.addCallback(self._greeted)
        d.chainDeferred(self.ready)

    def _greeted(self, reply):
        if reply.code != 220:
            raise ReinjectError(f"greeting: {reply.code} {reply.text}")
        return self.command(f"EHLO {self.hostname}").addCallback(self._ehlo)

    def _ehlo(self, reply):
        if reply.code != 250:
            raise ReinjectError(f"EHLO: {reply.code} {reply.text}")
        for line in reply.text.split("\n")[1:]:
            name, _, value = line.strip().partition(" ")
            self.extensions[name.upper()] = value.upper().split()
        return self

    def _expect_reply(self) -> defer.Deferred:
        d = defer.Deferred()
        if self.closed:
            d.errback(ReinjectError("connection closed", lost=True))
        else:
            self.waiting.append(d)
        return d

    def command(self, line: str) -> defer.Deferred:
        d = self._expect_reply()
        if not self.closed:
            self.transport.write(line.encode("utf-8", "surrogateescape") + b"\r\n")
        return d

    def lineReceived(self, line: bytes):
        line = line.rstrip(b"\r").decode("utf-8", "replace")
        self.lines.append(line[4:])
        if len(line) > 3 and line[3] == "-":
            return
        code = int(line[:3]) if line[:3].isdigit() else 0
        reply, self.lines = Reply(code, "\n".join(self.lines)), []
        if self.waiting:
            self.waiting.popleft().callback(reply)
        else:
            self.log.warn("unexpected reply from the reinject service: {code}", code=code)

    def connectionLost(self, reason):
        self.closed = True
        on_expire = self.on_expire
        self._cancel_idle()
        if on_expire is not None:  # parked: leave the pool now, not at the next delivery
            on_expire(self)
        waiting, self.waiting = self.waiting, deque()
        for d in waiting:
            d.errback(ReinjectError(f"connection lost: {reason.getErrorMessage()}", lost=True))

    # -- one transaction -----------------------------------------------------
    @defer.inlineCallbacks
    def transaction(self, envelope, parts):
        """Reinject; fires with the final 250 Reply or fails with ReinjectError."""
        self._cancel_idle()
        xforward = self._xforward(envelope.xforward)
        if xforward:
            yield self._step(f"XFORWARD {xforward}", 250)
        params = self._params(envelope.mail_params)
        yield self._step(f"MAIL FROM:<{envelope.mail_from}>{params}", 250)
        for addr, rcpt_params in envelope.rcpts:
            yield self._step(f"RCPT TO:<{addr}>{self._params(rcpt_params)}", 250, 251)
        yield self._step("DATA", 354)
        final = self._expect_reply()
        self.transport.registerProducer(_Streamer(self.transport, stuffed_parts(parts)),
                                        False)
        try:
            reply = yield final
        except ReinjectError as e:
            raise ReinjectError(str(e), sent=True, lost=e.lost) from None
        if reply.code != 250:
            raise ReinjectError(f"end of data: {reply.code} {reply.text}", sent=True)
        return reply

    @defer.inlineCallbacks
    def _step(self, line, *expected):
        reply = yield self.command(line)
        if reply.code not in expected:
            raise ReinjectError(f"{line.split(':')[0]}: {reply.code} {reply.text}")
        return reply

    def _params(self, params) -> str:
        kept = [p for p in params
                if PARAM_EXTENSIONS.get(p.partition("=")[0].upper()) in self.extensions]
        return "".join(" " + p for p in kept)

    def _xforward(self, attributes) -> str:
        names = set(self.extensions.get("XFORWARD", ()))
        return " ".join(a for a in attributes if a.partition("=")[0].upper() in names)

    def park(self, reactor, on_expire):
        self.on_expire = on_expire
        self.idle_timer = reactor.callLater(IDLE_SECONDS, on_expire, self)

    def _cancel_idle(self):
        if self.idle_timer is not None and self.idle_timer.active():
            self.idle_timer.cancel()
        self.idle_timer = self.on_expire = None

    def quit(self):
        if not self.closed and self.transport is not None:
            self.command("QUIT").addErrback(lambda f: None)
            self.transport.loseConnection()

    def abort(self):
        if not self.closed and self.transport is not None:
            self.transport.abortConnection()


class ReinjectPool:
    """Reinject over a few reused connections to one Postfix endpoint."""

    log = Logger()

    def __init__(self, reactor, endpoint: str, hostname: str, timeout: float,
                 max_idle: int = 8):
        self.reactor = reactor
        # an endpoint string from the config, or an endpoint object (tests)
        self.endpoint = (clientFromString(reactor, endpoint) if isinstance(endpoint, str)
                         else endpoint)
        self.hostname = hostname
        self.timeout = timeout
        self.max_idle = max_idle
        self.idle = []

    def deliver(self, mail, prepend: bytes = b"") -> defer.Deferred:
        """Reinject `mail` (a `mail.Mail`): its envelope as received, its bytes
        unchanged after `prepend` (header fields added, e.g. DKIM-Signature)."""
        d = self._deliver(mail.envelope, [prepend, mail.data])
        return d.addTimeout(self.timeout, self.reactor, onTimeoutCancel=self._timed_out)

    @staticmethod
    def _timed_out(result, timeout):
        raise ReinjectError(f"no answer within {timeout} seconds")

    @defer.inlineCallbacks
    def _deliver(self, envelope, parts):
        while self.idle:
            client = self.idle.pop()
            if client.closed:  # the reinject service closed it while parked
                continue
            try:
                reply = yield self._attempt(client, envelope, parts)
                return reply
            except ReinjectError as e:
                if e.sent or not e.lost:
                    raise
                # a parked connection that died: nothing was sent, try another
                self.log.debug("reused reinject connection was closed: {why}", why=e)
        client = yield self._connect()
        reply = yield self._attempt(client, envelope, parts)
        return reply

    def _attempt(self, client, envelope, parts):
        d = client.transaction(envelope, parts)
        d.addCallbacks(self._succeeded, self._failed, callbackArgs=(client,),
                       errbackArgs=(client,))
        return d

    def _succeeded(self, reply, client):
        if len(self.idle) < self.max_idle and not client.closed:
            self.idle.append(client)
            client.park(self.reactor, self._expire)
        else:
            client.quit()
        return reply

    def _failed(self, failure, client):
        client.abort()
        # A failure's traceback holds the frames of this delivery, and their
        # locals hold the whole message: keep the reason, drop the frames.
        failure.cleanFailure()
        if not failure.check(ReinjectError):
            raise ReinjectError(f"{failure.type.__name__}: {failure.getErrorMessage()}")
        return failure

    def _expire(self, client):
        """A parked connection's idle time is over, or the service closed it."""
        client._cancel_idle()
        if client in self.idle:
            self.idle.remove(client)
        client.quit()

    @defer.inlineCallbacks
    def _connect(self):
        client = ReinjectClient(self.hostname)
        try:
            yield connectProtocol(self.endpoint, client)
            yield client.ready
        except ReinjectError:
            client.abort()
            raise
        except Exception as e:
            client.abort()
            raise ReinjectError(f"cannot connect: {e}") from None
        return client

    def close(self):
        idle, self.idle = self.idle, []
        for client in idle:
            client._cancel_idle()
            client.quit()
