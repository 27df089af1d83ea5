"""Property-based fuzzing of filtermail's SMTP server and DATA framing (hypothesis).

Properties of the wire, not "nothing raised": every reply is a well-formed
SMTP reply; a message handed to the handler is exactly what was sent (dot-
stuffing undone); the server closes a connection only after a 421/500 reply;
otherwise it still answers a good transaction after any hostile input; and a
closed connection leaves no timer behind.
"""

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from chatmail_services.filtermail.server import SMTPServer
from chatmail_services.filtermail.smtp import DataReader, dot_stuff, stuffed_parts, unstuff

from .smtp_helpers import QUEUED, SinkHandler

MAX = 2000
COMMANDS = [b"EHLO postfix.test", b"HELO x", b"EHLO", b"MAIL FROM:<a@chat.example.org>",
            b"MAIL FROM:<>", b"MAIL FROM:<a@x> SIZE=99999999", b"MAIL FROM:a@x BODY=8BITMIME",
            b"MAIL TO:<a@x>", b"MAIL FROM:<unclosed", b"RCPT TO:<b@example.net>",
            b"RCPT TO:<>", b"RCPT TO:<\"quoted>\"@x>", b"RCPT TO:<" + b"a" * 300 + b"@x>",
            b"DATA", b"RSET", b"NOOP", b"VRFY x", b"XFORWARD NAME=x ADDR=1.2.3.4",
            b"XFORWARD bogus", b"BDAT 10", b"mail from:<A@X>", b"\x00\xff", b"\xc3\xa9",
            b"", b" ", b"12345", b".", b"..", b"x" * 9000]
BODY = [b"Subject: x\r\n", b"\r\n", b".\r\n", b"..\r\n", b".x\r\n", b"\r\n.\r", b"\n.\n",
        b"\xff\x00", b"line\r\n", b"\r", b"\n"]
SESSION = st.lists(st.one_of(st.sampled_from(COMMANDS).map(lambda c: c + b"\r\n"),
                             st.lists(st.sampled_from(BODY), max_size=8).map(b"".join)),
                   max_size=20).map(b"".join)
REPLY_LINE = re.compile(rb"[2-5]\d\d[ -][^\r\n]*")
PROBE = b"\r\n.\r\nRSET\r\nNOOP\r\n"  # ends any DATA, then a command that must be answered


def connect(handler):
    clock = Clock()
    proto = SMTPServer(handler, "filter.test", MAX)
    proto.callLater = clock.callLater
    proto.makeConnection(StringTransport())
    return proto, clock


def feed(proto, data, cuts):
    start = 0
    for point in sorted({min(c, len(data)) for c in cuts}) + [len(data)]:
        if not proto.transport.disconnecting:
            proto.dataReceived(data[start:point])
        start = point


@settings(max_examples=300, deadline=None)
@given(SESSION, st.lists(st.integers(0, 2000), max_size=6))
def test_any_session_gets_well_formed_replies_and_a_usable_or_cleanly_closed_connection(
        session, cuts):
    handler = SinkHandler()
    proto, clock = connect(handler)
    feed(proto, session + PROBE, cuts)
    out = proto.transport.value()
    assert out.endswith(b"\r\n")
    lines = out[:-2].split(b"\r\n")
    assert all(REPLY_LINE.fullmatch(line) for line in lines), lines
    if proto.transport.disconnecting:
        assert lines[-1][:3] in (b"421", b"500", b"221")
    else:
        assert lines[-1] == b"250 2.0.0 Ok"  # the NOOP of the probe
    for envelope, message in handler.received:
        assert envelope.rcpts and len(message) <= MAX
    proto.connectionLost(None)
    assert clock.getDelayedCalls() == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(BODY), max_size=30).map(b"".join),
       st.lists(st.integers(0, 300), max_size=8))
def test_a_message_arrives_as_sent_however_the_data_is_split(content, cuts):
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    handler = SinkHandler()
    proto, _ = connect(handler)
    wire = (b"EHLO postfix.test\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
            + dot_stuff(content) + b".\r\nNOOP\r\n")
    feed(proto, wire, cuts)
    if len(content) > MAX:
        assert handler.received == []
        return
    ((_, message),) = handler.received
    assert message == content
    assert proto.transport.value().endswith(b"250 " + QUEUED.text.encode() + b"\r\n"
                                            b"250 2.0.0 Ok\r\n")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=5), st.binary(max_size=40),
       st.lists(st.integers(0, 400), max_size=8))
def test_data_framing_round_trips_stuffed_parts_and_keeps_what_follows(parts, after, cuts):
    parts = [p.replace(b"\r", b"").replace(b"\n", b"\r\n") for p in parts]
    content = b"".join(parts)
    if content and not content.endswith(b"\r\n"):
        parts.append(b"\r\n")
        content += b"\r\n"
    wire = b"".join(stuffed_parts(parts)) + b".\r\n" + after
    reader, rest = DataReader(10_000), None
    start = 0
    for point in sorted({min(c, len(wire)) for c in cuts}) + [len(wire)]:
        if rest is None:
            rest = reader.feed(wire[start:point])
            if rest is not None:
                rest += wire[point:]
        start = point
    assert rest == after
    assert unstuff(reader.buffer) == content
