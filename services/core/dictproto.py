"""Dovecot dict protocol server: framing, ordering and transactions.

The codec lives in dictcodec; what a key means is the business of a
`DictHandler` supplied by each daemon (doveauth, lastlogin, metadata).
This module guarantees the wire behaviour docs/dict-protocol.md describes:

- replies go out in request order, even when a handler answers later
  (its result is a Deferred, e.g. from a thread pool); a plain value is
  written at once when no earlier reply is pending (no Deferred made);
- the replies to one read leave in one send, at once (core/sendnow.py);
- transactions are per connection (ids repeat across connections) and their
  changes reach the handler only at commit; rollback or a lost connection
  discards them;
- a malformed line, an overlong line or a failing handler gets `F` (or a log
  line for commands that take no reply) and the connection stays usable;
- a `Temporary` failure (core/failures.py, e.g. the store is down) is mapped
  here, once for every daemon: `F` with a fixed text, never the error's own
  text, and no log line when the cause was already logged (`logged`).
"""

from collections import deque
from typing import Iterable, List, NamedTuple, Optional, Tuple

from twisted.internet import defer
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from . import dictcodec as codec
from .failures import Temporary
from .logsafe import REPEATED, shown
from .sendnow import SendNow


TEMPORARY_TEXT = "temporary failure, try again later"


class DictFailure(Exception):
    """A handler's way to answer `F` with a reason (no traceback logged)."""


class Change(NamedTuple):
    """One change of a transaction: op is 'set', 'unset' or 'inc'."""

    op: str
    key: str
    value: Optional[str] = None


class DictHandler:
    """What a daemon implements; each method may return a value or a Deferred."""

    def lookup(self, key: str, user: str) -> Optional[str]:
        """The value, or None for not found."""
        return None

    def iterate(self, path: str, user: str, flags: int, max_rows: int) -> Iterable[Tuple[str, str]]:
        """(key, value) rows under `path`; empty by default."""
        return ()

    def commit(self, user: str, changes: List[Change]) -> None:
        """Apply a transaction's changes; raise DictFailure to answer `F`."""
        raise DictFailure("this dict is read-only")


MAX_TRANSACTIONS = 256  # these two keep one connection from growing without limit
MAX_CHANGES = 4096


class _Transaction(NamedTuple):
    user: str
    changes: list


@implementer(IHalfCloseableProtocol)
class DictServerProtocol(Protocol):
    # Dovecot's client refuses lines over 64 KiB too (DICT_CLIENT_MAX_LINE_LENGTH).
    MAX_LENGTH = 64 * 1024
    log = Logger()
    repeated = REPEATED  # warnings a client can repeat: once a minute, all counted

    def __init__(self, handler: DictHandler):
        self.handler = handler
        self.dict_name = self.hello_user = ""
        self._buffer, self._discarding = b"", False
        self._replies = deque()
        self._transactions = {}
        self._read_closed = self._batching = False  # _batching: in dataReceived
        self._out, self._sender = [], None  # replies not yet sent; SendNow

    def connectionMade(self) -> None:
        self._sender = SendNow(self.transport)

    # -- framing -----------------------------------------------------------
    # Twisted's LineOnlyReceiver stops reading a whole chunk at an overlong
    # line and drops the lines after it; here an overlong line is answered
    # with F and skipped, and the lines around it are still served.
    def dataReceived(self, data: bytes) -> None:
        self._batching = True  # a handler's bug loses the connection: no finally
        self._frame(data)
        self._batching = False
        self._push()

    def _frame(self, data: bytes) -> None:
        self._buffer += data
        while not self.transport.disconnecting:
            line, sep, rest = self._buffer.partition(b"\n")
            if not sep:
                break
            self._buffer = rest
            if self._discarding:
                self._discarding = False
                self._overlong(line)
            elif len(line) > self.MAX_LENGTH:
                self._overlong(line)
            else:
                self.lineReceived(line)
        if len(self._buffer) > self.MAX_LENGTH:
            self._buffer = self._buffer[:1]  # keep the command letter for the answer
            self._discarding = True

    def _overlong(self, line: bytes) -> None:
        self._malformed(codec.decode_line(line[:1]), "line too long")

    def connectionLost(self, reason=None) -> None:
        # Answers still on their way find no connection and are dropped (_push).
        self._transactions.clear()
        self._buffer = b""

    # A client that sends its requests and then shuts down its sending side
    # still gets every reply; the connection closes after the last one.
    def readConnectionLost(self) -> None:
        self._read_closed = True
        self._transactions.clear()
        self._flush()

    def writeConnectionLost(self) -> None:
        self.transport.loseConnection()

    # -- dispatch ----------------------------------------------------------
    def lineReceived(self, line: bytes) -> None:
        text = codec.decode_line(line.rstrip(b"\r"))
        try:
            cmd = codec.parse_command(text)
            getattr(self, "cmd_" + cmd.kind)(cmd)
        except codec.DictProtocolError as e:
            self._malformed(text, str(e))

    def _malformed(self, text: str, problem: str) -> None:
        if codec.expects_reply(text):
            self._reply(codec.format_fail(f"malformed request: {problem}"))
        else:
            self._warn("dict_malformed", "dict {name}: ignored malformed {cmd} line: {problem}",
                       cmd=shown(text[:1]), problem=shown(problem))

    def _warn(self, kind: str, fmt: str, **fields) -> None:
        self.repeated.warn(self.log, kind, fmt, name=self.dict_name, **fields)

    def cmd_H(self, cmd):
        self.hello_user = cmd.arg(3, "")
        self.dict_name = shown(cmd.arg(4, ""))  # only ever logged: log-safe once

    def cmd_L(self, cmd):
        user = cmd.arg(1, self.hello_user)
        self._answer(self.handler.lookup, cmd.args[0], user, render=codec.render_lookup)

    def cmd_I(self, cmd):
        if len(cmd.args) >= 3:  # 2.3+: flags, max rows, path, user
            flags, max_rows, path = cmd.args[0], cmd.args[1], cmd.args[2]
            user = cmd.arg(3, self.hello_user)
        else:  # 2.2: flags, path
            flags, max_rows, path, user = cmd.args[0], "0", cmd.arg(1, ""), self.hello_user
        try:
            flags, max_rows = int(flags), int(max_rows)
        except ValueError:
            raise codec.DictProtocolError("iterate flags and max rows must be numbers")
        self._answer(self.handler.iterate, path, user, flags, max_rows,
                     render=lambda rows: codec.render_rows(rows, max_rows))

    def cmd_B(self, cmd):
        tid = cmd.args[0]
        if tid in self._transactions or len(self._transactions) >= MAX_TRANSACTIONS:
            self._warn("dict_begin_refused",
                       "dict {name}: refused transaction begin (duplicate id or too many)")
            self._transactions[tid] = None  # poisoned: its commit answers F
            return
        self._transactions[tid] = _Transaction(cmd.arg(1, self.hello_user), [])

    def cmd_S(self, cmd):
        self._change(cmd.args[0], Change("set", cmd.args[1], cmd.args[2]))

    def cmd_U(self, cmd):
        self._change(cmd.args[0], Change("unset", cmd.args[1]))

    def cmd_A(self, cmd):
        self._change(cmd.args[0], Change("inc", cmd.args[1], cmd.args[2]))

    def cmd_T(self, cmd):
        """2.4's transaction timestamp (T) and hide-values flag (V): we keep
        our own clock and never log values."""

    cmd_V = cmd_T

    def cmd_R(self, cmd):
        self._transactions.pop(cmd.args[0], None)

    def cmd_C(self, cmd):
        tid = cmd.args[0]
        trans = self._transactions.pop(tid, None)
        if trans is None:
            self._reply(codec.format_commit(False, tid, "unknown or refused transaction"))
            return
        render = lambda _: codec.format_commit(True, tid)  # noqa: E731
        fail = lambda error: codec.format_commit(False, tid, error)  # noqa: E731
        self._answer(self.handler.commit, trans.user, trans.changes, render=render, fail=fail)

    cmd_D = cmd_C

    def _change(self, tid: str, change: Change) -> None:
        trans = self._transactions.get(tid)
        if trans is None:
            self._warn("dict_unknown_transaction",
                       "dict {name}: change for unknown transaction ignored")
            return
        if len(trans.changes) >= MAX_CHANGES:
            self._warn("dict_transaction_too_large",
                       "dict {name}: transaction too large, it will fail")
            self._transactions[tid] = None
            return
        trans.changes.append(change)

    # -- replies in request order -----------------------------------------
    def _answer(self, method, *args, render, fail=codec.format_fail):
        """Reply at once to a plain value (or an exception), in turn to a Deferred."""
        try:
            result = method(*args)
            text = None if isinstance(result, defer.Deferred) else render(result)
        except Exception:
            text = self._failed(Failure(), fail)
        if text is not None:
            return self._reply(text)
        self._replies.append(slot := [None])
        result.addCallback(render).addErrback(self._failed, fail).addCallback(self._fill, slot)

    def _reply(self, text: str) -> None:
        if self._replies:  # an earlier answer is still on its way: in turn
            self._replies.append([text])
            return self._flush()
        self._send(codec.encode_line(text))

    def _failed(self, failure, fail):
        if failure.check(DictFailure):
            return fail(str(failure.value))
        if failure.check(Temporary):
            if not failure.value.logged:
                self.log.error("dict {name}: temporary failure: {why}", name=self.dict_name,
                               why=failure.getErrorMessage())
            return fail(TEMPORARY_TEXT)
        self.log.failure("dict {name}: handler failed", failure, name=self.dict_name)
        return fail("internal error")

    def _fill(self, text, slot):
        slot[0] = text
        self._flush()

    def _flush(self):
        out = []
        while self._replies and self._replies[0][0] is not None:
            out.append(codec.encode_line(self._replies.popleft()[0]))
        self._send(b"".join(out))

    def _send(self, data: bytes) -> None:
        if data:
            self._out.append(data)
        if not self._batching:
            self._push()
        if self._read_closed and not self._replies:
            self._push()
            self.transport.loseConnection()

    def _push(self) -> None:
        if self._out and self.transport is not None and not self.transport.disconnecting:
            self._sender.send(b"".join(self._out))
        self._out.clear()


class DictServerFactory(Factory):
    """One handler shared by every connection; connection setup stays cheap."""

    noisy = False  # Dovecot connects per request: no log line per connection

    def __init__(self, handler: DictHandler):
        self.handler = handler

    def buildProtocol(self, addr):
        proto = DictServerProtocol(self.handler)
        proto.factory = self
        return proto
