"""The filter's ESMTP server, bytes in -> bytes out (StringTransport)."""

import pytest
from twisted.internet import defer
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, Logger

from chatmail_services.core.failures import Refused, Temporary
from chatmail_services.filtermail.server import SMTPServer, parse_path
from chatmail_services.filtermail.smtp import DataReader, Reply, unstuff

from .smtp_helpers import QUEUED, SinkHandler

MAX = 1000


@pytest.fixture
def handler():
    return SinkHandler()


@pytest.fixture
def server(handler):
    proto = SMTPServer(handler, "filter.test", MAX)
    proto.makeConnection(StringTransport())
    proto.transport.clear()
    return proto


def talk(server, data: bytes, bytewise=False) -> list[str]:
    if bytewise:
        for i in range(len(data)):
            server.dataReceived(data[i:i + 1])
    else:
        server.dataReceived(data)
    out = server.transport.value().decode()
    server.transport.clear()
    return out.splitlines()


def transaction(sender="<a@chat.example.org>", rcpts=("<b@example.net>",), body=b"x\r\n"):
    lines = [f"MAIL FROM:{sender}".encode()] + [f"RCPT TO:{r}".encode() for r in rcpts]
    return b"\r\n".join(lines) + b"\r\nDATA\r\n" + body + b".\r\n"


def test_greeting_and_ehlo_announce_what_postfix_uses(handler):
    proto = SMTPServer(handler, "filter.test", MAX)
    proto.makeConnection(StringTransport())
    assert proto.transport.value() == b"220 filter.test ESMTP chatmail filtermail\r\n"
    proto.transport.clear()
    lines = talk(proto, b"EHLO postfix.test\r\n")
    assert lines[0] == "250-filter.test" and lines[-1].startswith("250 XFORWARD NAME ADDR")
    assert {"250-PIPELINING", f"250-SIZE {MAX}", "250-8BITMIME", "250-SMTPUTF8",
            "250-DSN"} <= set(lines)


STUFFED = (b"Subject: dots\r\n\r\n..leading dot\r\n.\xff\xfe 8-bit\r\n"
           b"...\r\nlast line without dot\r\n")
CONTENT = (b"Subject: dots\r\n\r\n.leading dot\r\n\xff\xfe 8-bit\r\n"
           b"..\r\nlast line without dot\r\n")


@pytest.mark.parametrize("bytewise", [False, True])
def test_transaction_keeps_params_and_unstuffs_data(server, handler, bytewise):
    data = (b"EHLO postfix.test\r\nMAIL FROM:<A@chat.example.org> SIZE=120 BODY=8BITMIME\r\n"
            b"RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.net\r\n"
            b"RCPT TO:<c@example.net>\r\nDATA\r\n" + STUFFED + b".\r\n")
    lines = talk(server, data, bytewise)
    assert lines[-5:] == ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok",
                          "354 End data with <CR><LF>.<CR><LF>", f"250 {QUEUED.text}"]
    (envelope, message), = handler.received
    assert envelope.mail_from == "A@chat.example.org"
    assert envelope.mail_params == ("SIZE=120", "BODY=8BITMIME")
    assert envelope.rcpts == [("b@example.net", ("NOTIFY=SUCCESS,FAILURE",
                                                 "ORCPT=rfc822;b@example.net")),
                              ("c@example.net", ())]
    assert message == CONTENT


def test_null_sender_and_several_messages_per_connection(server, handler):
    talk(server, b"EHLO p\r\n")
    lines = talk(server, transaction("<>") + transaction() + b"RSET\r\nNOOP\r\nQUIT\r\n")
    assert lines == ["250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>",
                     f"250 {QUEUED.text}"] * 2 + ["250 2.0.0 Ok"] * 2 + ["221 2.0.0 Bye"]
    assert [e.mail_from for e, _ in handler.received] == ["", "a@chat.example.org"]
    assert server.transport.disconnecting


def test_pipelined_commands_wait_for_the_previous_message(server, handler):
    handler.hold = True
    talk(server, b"EHLO p\r\n")
    lines = talk(server, transaction(body=b"one\r\n") + transaction(body=b"two\r\n"))
    assert lines[-1].startswith("354")  # nothing of the second transaction yet
    handler.hold = False
    handler.held.pop().callback(Reply(250, "2.0.0 first"))
    lines = talk(server, b"")
    assert lines == ["250 2.0.0 first", "250 2.1.0 Ok", "250 2.1.5 Ok",
                     "354 End data with <CR><LF>.<CR><LF>", f"250 {QUEUED.text}"]
    assert handler.received[0][1] == b"two\r\n"


def test_empty_message(server, handler):
    talk(server, b"EHLO p\r\n")
    assert talk(server, transaction(body=b""))[-1] == f"250 {QUEUED.text}"
    assert handler.received[0][1] == b""


@pytest.mark.parametrize("failure", [
    lambda: defer.fail(RuntimeError("store down")),
    lambda: 1 / 0,
    lambda: "not a reply",
])
def test_any_failure_at_end_of_data_is_451_never_550(server, handler, failure):
    handler.deliver = lambda envelope, message: failure()
    talk(server, b"EHLO p\r\n")
    lines = talk(server, transaction())
    assert lines[-1] == "451 4.3.0 Error: queue file write error, try again later"
    assert talk(server, b"NOOP\r\n") == ["250 2.0.0 Ok"]  # the connection goes on


@pytest.mark.parametrize("answer, reply", [
    (Refused("cleartext", "not multipart/encrypted"),
     "523 Encryption Needed: Invalid Unencrypted Mail"),
    (Refused("dkim-dns-failure"),
     "451 4.4.3 Temporary DNS failure looking up the DKIM key, try again later"),
    (Refused("rate-limited", "try again in 3 seconds"),
     "450 4.7.1 Rate limit exceeded: too much mail from this sender, try again in 3 seconds"),
    (Refused("not-in-the-table"), "451 4.3.0 Error: queue file write error, try again later"),
    (Refused("greeting"), "451 4.3.0 Error: queue file write error, try again later"),
])
def test_a_refusal_gets_its_reply_from_the_table(server, handler, answer, reply):
    handler.reply = answer
    talk(server, b"EHLO p\r\n")
    assert talk(server, transaction())[-1] == reply


def logged_temporary(why):
    error = Temporary(why)
    error.logged = True
    return error


@pytest.mark.parametrize("error, logs", [
    (logged_temporary("redis down"), []),
    (Temporary("disk full"), [(LogLevel.warn, False)]),  # one line, no traceback
    (RuntimeError("bug"), [(LogLevel.critical, True)]),
])
def test_a_failure_is_451_and_logged_once_at_most(server, handler, error, logs):
    events = []
    server.log = Logger(observer=events.append)
    handler.deliver = lambda envelope, message: defer.fail(error)
    talk(server, b"EHLO p\r\n")
    assert talk(server, transaction())[-1].startswith("451 4.3.0 ")
    assert [(e["log_level"], "log_failure" in e) for e in events] == logs


def test_size_parameter_over_the_limit_is_552(server):
    talk(server, b"EHLO p\r\n")
    assert talk(server, f"MAIL FROM:<a@b.c> SIZE={MAX + 1}\r\n".encode()) == [
        "552 5.3.4 Error: message file too big"]


def test_oversized_data_is_counted_not_kept_and_answered_552(server, handler):
    talk(server, b"EHLO p\r\n")
    talk(server, b"MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n")
    for _ in range(30):
        talk(server, b"x" * 98 + b"\r\n")
    assert server.reader.too_big and server.reader.buffer is None
    assert talk(server, b".\r\n") == ["552 5.3.4 Error: message file too big"]
    assert handler.received == []
    assert talk(server, transaction())[-1] == f"250 {QUEUED.text}"


@pytest.mark.parametrize("data,reply", [
    (b"MAIL FROM:<a@b.c>\r\n", "503 5.5.1 Error: send HELO/EHLO first"),
    (b"EHLO p\r\nRCPT TO:<a@b.c>\r\n", "503 5.5.1 Error: need MAIL command"),
    (b"EHLO p\r\nMAIL FROM:<a@b.c>\r\nDATA\r\n", "503 5.5.1 Error: need RCPT command"),
    (b"EHLO p\r\nMAIL FROM:<a@b.c>\r\nMAIL FROM:<a@b.c>\r\n",
     "503 5.5.1 Error: nested MAIL command"),
    (b"EHLO p\r\nMAIL FROM:<a@b.c>\r\nRSET\r\nRCPT TO:<a@b.c>\r\n",
     "503 5.5.1 Error: need MAIL command"),
    (b"BDAT 10 LAST\r\n", "502 5.5.2 Error: command not recognized"),
    (b"EHLO p\r\nMAIL TO:<a@b.c>\r\n", "501 5.5.4 Syntax: FROM:<address>"),
    (b"EHLO p\r\nMAIL FROM:<a@b.c\r\n", "501 5.1.7 Bad address syntax"),
    (b"EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname"),
])
def test_command_errors_get_clear_replies(server, data, reply):
    assert talk(server, data)[-1] == reply
    assert not server.transport.disconnecting


def test_mail_refusal_from_the_handler(server, handler):
    handler.mail_reply = Reply(450, "4.7.1 Rate limit exceeded")
    talk(server, b"EHLO p\r\n")
    assert talk(server, b"MAIL FROM:<a@b.c>\r\n") == ["450 4.7.1 Rate limit exceeded"]
    assert server.envelope is None


@pytest.mark.parametrize("answer, reply", [
    (None, "250 2.1.0 Ok"),
    (Reply(450, "4.7.1 Rate limit exceeded"), "450 4.7.1 Rate limit exceeded"),
])
def test_pipelined_commands_wait_for_a_deferred_mail_check(server, handler, answer, reply):
    handler.mail_reply = pending = defer.Deferred()
    talk(server, b"EHLO p\r\n")
    assert talk(server, b"MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nNOOP\r\n") == []
    pending.callback(answer)
    rcpt = "250 2.1.5 Ok" if answer is None else "503 5.5.1 Error: need MAIL command"
    assert talk(server, b"") == [reply, rcpt, "250 2.0.0 Ok"]


def test_a_failing_mail_check_is_451(server, handler):
    handler.mail_reply = defer.fail(RuntimeError("bug"))
    talk(server, b"EHLO p\r\n")
    assert talk(server, b"MAIL FROM:<a@b.c>\r\n")[0].startswith("451 4.3.0")
    assert server.envelope is None and not server.transport.disconnecting


def test_xforward_attributes_belong_to_the_next_transaction(server, handler):
    talk(server, b"EHLO p\r\n")
    assert talk(server, b"XFORWARD NAME=mx.example.net ADDR=192.0.2.1\r\n"
                        b"XFORWARD PROTO=ESMTP HELO=mx.example.net\r\n") == ["250 2.0.0 Ok"] * 2
    talk(server, transaction() + transaction())
    assert handler.received[0][0].xforward == ("NAME=mx.example.net", "ADDR=192.0.2.1",
                                               "PROTO=ESMTP", "HELO=mx.example.net")
    assert handler.received[1][0].xforward == ()


def test_overlong_command_line_is_answered_then_closed(server):
    assert talk(server, b"NOOP " + b"x" * 10000) == ["500 5.5.0 Error: line too long"]
    assert server.transport.disconnecting


@pytest.mark.parametrize("arg,expected", [
    ("FROM:<a@b.c>", ("a@b.c", ())),
    ("FROM: <a@b.c> SIZE=5", ("a@b.c", ("SIZE=5",))),
    ("from:<>", ("", ())),
    ('FROM:<"odd>name"@b.c> BODY=8BITMIME', ('"odd>name"@b.c', ("BODY=8BITMIME",))),
    ("FROM:a@b.c SMTPUTF8", ("a@b.c", ("SMTPUTF8",))),
])
def test_parse_path(arg, expected):
    assert parse_path(arg, "FROM") == expected


@pytest.mark.parametrize("stuffed,content", [
    (b"", b""), (b"..\r\n", b".\r\n"), (b"a\r\n..b\r\n", b"a\r\n.b\r\n"),
    (b"a.\r\n", b"a.\r\n"), (b"a\n.b\r\n", b"a\n.b\r\n"),
])
def test_unstuff(stuffed, content):
    assert unstuff(bytearray(stuffed)) == content


def test_end_marker_found_wherever_chunks_split():
    wire = b"a\r\n..b\r\n\r\n.\r\nQUIT\r\n"
    for split in range(len(wire) + 1):
        reader = DataReader(100)
        rest = reader.feed(wire[:split])
        if rest is None:
            rest = reader.feed(wire[split:])
        else:  # found in the first chunk: the second one is command input
            rest += wire[split:]
        assert (bytes(reader.buffer), rest) == (b"a\r\n..b\r\n\r\n", b"QUIT\r\n"), split


def clocked_server(handler):
    from twisted.internet.task import Clock

    proto = SMTPServer(handler, "filter.test", MAX)
    proto.callLater = Clock().callLater
    proto.clock = proto.callLater.__self__
    proto.makeConnection(StringTransport())
    return proto


def test_a_closed_connection_leaves_no_timer_behind(handler):
    proto = clocked_server(handler)
    talk(proto, b"EHLO postfix.test\r\n" + transaction() + b"QUIT\r\n")
    assert proto.clock.getDelayedCalls()  # the idle timer of the open connection
    proto.connectionLost(None)
    assert proto.clock.getDelayedCalls() == []


def test_a_delivery_that_ends_after_the_connection_closed_starts_no_timer(handler):
    handler.hold = True
    proto = clocked_server(handler)
    talk(proto, b"EHLO postfix.test\r\n" + transaction())
    proto.connectionLost(None)
    handler.held[0].callback(QUEUED)
    assert proto.clock.getDelayedCalls() == []
