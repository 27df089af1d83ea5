"""The dict server protocol, bytes in -> bytes out, with StringTransport
(and once on a real epoll reactor and UNIX socket, for when replies leave)."""

import io
import socket

import pytest
from prometheus_client import REGISTRY
from twisted.internet import defer
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger

from chatmail_services.core.dictproto import (
    MAX_TRANSACTIONS, DictFailure, DictHandler, DictServerFactory,
)
from chatmail_services.core.logsafe import Repeated
from chatmail_services.core.runner import emitter
from chatmail_services.core.store import StoreError, StoreUnavailable

HELLO = b"H3\t2\t0\t\ttest\n"


class RecordingHandler(DictHandler):
    """A real handler over an in-memory dict; lookups can be held back."""

    def __init__(self):
        self.data = {"shared/a": "1", "shared/tab": "x\ty"}
        self.commits = []
        self.held = {}

    def lookup(self, key, user):
        if key.startswith("shared/hold/"):
            d = self.held[key] = defer.Deferred()
            return d
        if key == "shared/boom":
            raise RuntimeError("handler bug")
        if key == "shared/refuse":
            raise DictFailure("store down")
        if key == "shared/outage":  # the store logged it once already
            raise StoreUnavailable("redis unreachable: Connection refused on 10.0.0.5")
        if key == "shared/ioerror":
            raise StoreError("cannot read password file: Input/output error")
        return self.data.get(key)

    def iterate(self, path, user, flags, max_rows):
        return sorted((k, v) for k, v in self.data.items() if k.startswith(path))

    def commit(self, user, changes):
        if any(ch.key == "shared/fail" for ch in changes):
            raise DictFailure("cannot write")
        self.commits.append((user, [(ch.op, ch.key, ch.value) for ch in changes]))


@pytest.fixture
def conn():
    handler = RecordingHandler()
    proto = DictServerFactory(handler).buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)

    class Conn:
        def send(self, data, bytewise=False):
            chunks = [data[i:i + 1] for i in range(len(data))] if bytewise else [data]
            for chunk in chunks:
                proto.dataReceived(chunk)
            out = transport.value()
            transport.clear()
            return out

    c = Conn()
    c.handler, c.proto, c.transport = handler, proto, transport
    return c


def test_hello_has_no_reply_and_lookup_answers(conn):
    assert conn.send(HELLO) == b""
    assert conn.send(b"Lshared/a\tu\n") == b"O1\n"
    assert conn.send(b"Lshared/none\tu\n") == b"N\n"


def test_reply_values_are_tab_escaped(conn):
    assert conn.send(b"Lshared/tab\tu\n") == b"Ox\x01ty\n"


def test_input_fed_one_byte_at_a_time_gives_the_same_replies(conn):
    data = HELLO + b"Lshared/a\tu\nLshared/none\tu\nB1\tu\nSshared/k\x01t\tv\n"
    assert conn.send(data, bytewise=True) == b"O1\nN\n"
    assert conn.send(b"C1\n", bytewise=True) == b"O1\n"


def test_replies_go_out_in_request_order_when_an_earlier_one_is_late(conn):
    out = conn.send(b"Lshared/hold/x\tu\nLshared/a\tu\nLshared/none\tu\n")
    assert out == b""  # the fast answers wait for the slow first one
    conn.handler.held["shared/hold/x"].callback("late")
    assert conn.transport.value() == b"Olate\nO1\nN\n"


def test_transaction_changes_reach_the_handler_only_at_commit(conn):
    conn.send(b"B1\tuser@x\nSshared/k\tv\nUshared/j\nAshared/n\t2\n".replace(b"\nS", b"\nS1\t")
              .replace(b"\nU", b"\nU1\t").replace(b"\nA", b"\nA1\t"))
    assert conn.handler.commits == []
    assert conn.send(b"C1\n") == b"O1\n"
    assert conn.handler.commits == [
        ("user@x", [("set", "shared/k", "v"), ("unset", "shared/j", None),
                    ("inc", "shared/n", "2")])]


def test_rollback_discards_changes(conn):
    conn.send(b"B4\tu\nS4\tshared/k\tv\nR4\n")
    assert conn.send(b"C4\n") == b"F4\tunknown or refused transaction\n"
    assert conn.handler.commits == []


def test_transaction_ids_are_per_connection():
    handler = RecordingHandler()
    factory = DictServerFactory(handler)
    protos = [factory.buildProtocol(None) for _ in range(2)]
    for i, p in enumerate(protos):
        p.makeConnection(StringTransport())
        p.dataReceived(b"B1\tu%d\nS1\tshared/k\t%d\n" % (i, i))
    for p in protos:
        p.dataReceived(b"C1\n")
        assert p.transport.value() == b"O1\n"
    assert [c[0] for c in handler.commits] == ["u0", "u1"]


def test_failing_commit_answers_f_with_the_reason(conn):
    assert conn.send(b"B2\tu\nS2\tshared/fail\tv\nC2\n") == b"F2\tcannot write\n"


def test_handler_exception_answers_f_and_connection_stays_usable(conn):
    assert conn.send(b"Lshared/boom\tu\n") == b"Finternal error\n"
    assert conn.send(b"Lshared/a\tu\n") == b"O1\n"
    assert not conn.transport.disconnecting


def test_dict_failure_text_reaches_the_client(conn):
    assert conn.send(b"Lshared/refuse\tu\n") == b"Fstore down\n"


def logged_by(conn):
    events = []
    conn.proto.log = Logger(observer=events.append)
    return events


def test_an_outage_the_store_logged_is_f_with_a_fixed_text_and_no_log_line(conn):
    events = logged_by(conn)
    for _ in range(3):
        assert conn.send(b"Lshared/outage\tu\n") == b"Ftemporary failure, try again later\n"
    assert events == []
    assert conn.send(b"Lshared/a\tu\n") == b"O1\n"


def test_another_temporary_failure_is_logged_once_per_request_without_traceback(conn):
    events = logged_by(conn)
    assert conn.send(b"Lshared/ioerror\tu\n") == b"Ftemporary failure, try again later\n"
    (event,) = events
    assert event["why"] == "cannot read password file: Input/output error"
    assert "log_failure" not in event


@pytest.mark.parametrize("line,reply", [
    (b"L", b"N\n"),  # the empty key: well-formed, simply not found
    (b"Zbogus", b"Fmalformed request: unknown command 'Z'\n"),
    (b"", b"Fmalformed request: empty line\n"),
    (b"Lbad\x01escape", b"Fmalformed request: invalid \\x01 escape\n"),
    (b"Iflags\tmax\tshared/", b"Fmalformed request: iterate flags and max rows must be numbers\n"),
])
def test_malformed_lines_get_f(conn, line, reply):
    assert conn.send(line + b"\n") == reply
    assert conn.send(b"Lshared/a\tu\n") == b"O1\n"


def test_malformed_no_reply_command_is_not_answered(conn):
    assert conn.send(b"S1\tonly-key\n") == b""
    assert conn.send(b"S99\tshared/k\tv\n") == b""  # unknown transaction
    assert conn.send(b"Lshared/a\tu\n") == b"O1\n"


def test_overlong_line_is_refused_and_the_next_line_served(conn):
    big = b"Lshared/" + b"x" * (conn.proto.MAX_LENGTH + 10)
    out = conn.send(big[:40000]) + conn.send(big[40000:] + b"\tu\nLshared/a\tu\n")
    assert out == b"Fmalformed request: line too long\nO1\n"


def test_overlong_complete_line_inside_one_chunk_keeps_following_lines(conn):
    big = b"L" + b"y" * (conn.proto.MAX_LENGTH + 1)
    assert conn.send(big + b"\nLshared/a\tu\n") == b"Fmalformed request: line too long\nO1\n"


def test_iterate_rows_end_with_an_empty_line(conn):
    assert conn.send(b"I0\t0\tshared/\tu\n") == b"Oshared/a\t1\nOshared/tab\tx\x01ty\n\n"
    assert conn.send(b"I0\t1\tshared/\tu\n") == b"Oshared/a\t1\n\n"
    assert conn.send(b"I0\t0\tpriv/\tu\n") == b"\n"


def test_dovecot_24_hello_and_begin_are_accepted(conn):
    conn.send(b"H4\t0\t0\t\ttest\nB1\tu\t0\nT1\t1700000000\nS1\tshared/k\tv\n")
    assert conn.send(b"C1\n") == b"O1\n"


def test_too_many_open_transactions_fail_at_commit(conn):
    for i in range(MAX_TRANSACTIONS):
        conn.send(b"B%d\tu\n" % i)
    assert conn.send(b"Bextra\tu\nCextra\n").startswith(b"Fextra")
    assert conn.send(b"C0\n") == b"O0\n"


def test_lost_connection_drops_open_transactions(conn):
    conn.send(b"B1\tu\nS1\tshared/k\tv\n")
    conn.proto.connectionLost(None)
    assert conn.proto._transactions == {}
    assert conn.handler.commits == []


def test_half_closed_client_gets_pending_replies_then_the_connection_closes(conn):
    conn.send(b"Lshared/hold/y\tu\nLshared/a\tu\n")
    conn.proto.readConnectionLost()
    assert not conn.transport.disconnecting  # a reply is still owed
    conn.handler.held["shared/hold/y"].callback("v")
    assert conn.transport.value() == b"Ov\nO1\n"
    assert conn.transport.disconnecting


def test_a_failing_plain_answer_waits_behind_a_late_one(conn):
    out = conn.send(b"Lshared/hold/x\tu\nLshared/boom\tu\nLshared/a\tu\n")
    assert out == b""
    conn.handler.held["shared/hold/x"].callback(None)
    assert conn.transport.value() == b"N\nFinternal error\nO1\n"


def test_iteration_failing_midway_answers_f(conn):
    def rows(path, user, flags, max_rows):
        yield "shared/a", "1"
        raise StoreError("cannot list accounts: Input/output error")

    conn.handler.iterate = rows
    assert conn.send(b"I0\t0\tshared/\tu\n") == b"Ftemporary failure, try again later\n"
    assert conn.send(b"Lshared/a\tu\n") == b"O1\n"


# --- log lines a client cannot forge or flood -----------------------------------

def rendered(events) -> str:
    """The events as the daemons write them to the journal (core/runner.py)."""
    out = io.StringIO()
    emit = emitter(out)
    for event in events:
        emit(event)
    return out.getvalue()


FORGED = "auth\ncritical: forged by the client"


def test_a_dictionary_name_cannot_write_a_log_line_of_its_own(conn):
    events = logged_by(conn)
    conn.proto.repeated = Repeated(clock=Clock().seconds)
    conn.send(b"H3\t2\t0\t\t" + FORGED.replace("\n", "\x01n").encode() + b"\x01n" * 9000 + b"\n")
    conn.send(b"Sx\n")  # malformed, takes no reply: a warning naming the dict
    text = rendered(events)
    assert text.count("\n") == 1 and text.startswith("warn: dict auth\\ncritical: forged")
    assert len(text) < 300  # the name is bounded too


def test_a_client_repeating_a_malformed_line_gets_one_log_line_and_a_counter():
    clock, counted = Clock(), REGISTRY.get_sample_value
    repeated = Repeated(clock=clock.seconds)
    before = counted("chatmail_client_warnings_total", {"kind": "dict_malformed"}) or 0
    events = []
    for _ in range(100):  # a hundred connections with ten hostile lines each
        proto = DictServerFactory(RecordingHandler()).buildProtocol(None)
        proto.log, proto.repeated = Logger(observer=events.append), repeated
        proto.makeConnection(StringTransport())
        proto.dataReceived(HELLO + b"S\n" * 10)
    assert len(events) == 1
    assert counted("chatmail_client_warnings_total", {"kind": "dict_malformed"}) == before + 1000
    clock.advance(61)
    proto.dataReceived(b"S\n")
    assert len(events) == 2 and "999 more like it not logged" in rendered(events[1:])


def test_a_traceback_is_indented_under_its_one_line():
    try:
        raise ValueError("client said\ncritical: forged")
    except ValueError:
        events = []
        Logger(observer=events.append).failure("handler failed")
    lines = rendered(events).splitlines()
    assert lines[0] == "critical: handler failed"
    assert all(line.startswith("    ") for line in lines[1:]) and len(lines) > 2


def test_replies_leave_in_the_reactor_turn_that_read_their_requests(tmp_path):
    """Twisted sends what a protocol writes on the reactor's next turn; the
    dict server sends it at once, the replies to one read together, and a late
    answer when it comes. A real epoll reactor, stepped one turn at a time."""
    reactor, handler = EPollReactor(), RecordingHandler()
    path = str(tmp_path / "dict.socket")
    port = reactor.listenUNIX(path, DictServerFactory(handler))
    client = socket.socket(socket.AF_UNIX)
    client.connect(path)
    client.setblocking(False)
    try:
        reactor.iterate(0)  # accepts the connection
        client.sendall(HELLO + b"Lshared/a\tu\nLshared/none\tu\nLshared/hold/x\tu\n")
        reactor.iterate(0)  # reads the requests
        assert client.recv(100) == b"O1\nN\n"
        handler.held["shared/hold/x"].callback("late")  # outside any reactor turn
        assert client.recv(100) == b"Olate\n"
    finally:
        client.close()
        port.stopListening()
        for _ in range(3):
            reactor.iterate(0)  # the server side sees the close
        reactor.waker.connectionLost(None)
        reactor._poller.close()
