"""Property-based fuzzing of the dict codec and server (hypothesis, bounded examples).

The properties are the wire contract, not "nothing raised": every request that
takes a reply gets exactly one well-formed reply, in order, however the bytes
are split; no-reply commands get none; the connection stays open and serves a
good request after any hostile input.
"""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport

from chatmail_services.core import dictcodec as codec
from chatmail_services.core.dictproto import DictFailure, DictHandler, DictServerFactory

# What hostile dict input is made of: every command letter, the field and
# escape characters, bytes that are not UTF-8, NUL, CR.
TOKENS = [b"H", b"L", b"I", b"B", b"C", b"D", b"R", b"S", b"U", b"A", b"T", b"V", b"Z",
          b"\t", b"\x01", b"\x011", b"\x01t", b"\x01n", b"\x01x", b"\r", b"\x00", b"\xff",
          b"\xc3\xa9", b"1", b"0", b"-1", b"shared/", b"priv/", b"shared/a", b"user@x", b"\\",
          b'"', b" "]
LINE = st.lists(st.sampled_from(TOKENS), max_size=12).map(b"".join)
LINES = st.lists(st.one_of(LINE, st.binary(max_size=40)), max_size=12)
PROBE = b"Lshared/a\tu\n"


class MemoryHandler(DictHandler):
    """A real handler over a dict; one key fails, commits are recorded."""

    def __init__(self):
        self.commits = []

    def lookup(self, key, user):
        if key == "shared/fail":
            raise DictFailure("refused")
        return {"shared/a": "1", "shared/tab": "x\ty\n"}.get(key)

    def commit(self, user, changes):
        self.commits.append(changes)


def connect(max_length=None):
    proto = DictServerFactory(MemoryHandler()).buildProtocol(None)
    if max_length is not None:
        proto.MAX_LENGTH = max_length
    proto.makeConnection(StringTransport())
    return proto


def replies_expected(lines):
    """One reply per line whose command takes one (malformed ones included)."""
    return sum(codec.expects_reply(codec.decode_line(line[:1])) for line in lines)


REPLY = re.compile(rb"[ONF][^\n]*")


def feed(proto, data: bytes, cuts):
    points = sorted({min(c, len(data)) for c in cuts}) + [len(data)]
    start = 0
    for point in points:
        proto.dataReceived(data[start:point])
        start = point


@settings(max_examples=300, deadline=None)
@given(LINES, st.lists(st.integers(0, 600), max_size=6), st.sampled_from([None, 24]))
def test_every_request_gets_one_well_formed_reply_in_order_however_split(lines, cuts,
                                                                         max_length):
    lines = [line.replace(b"\n", b"") for line in lines]
    data = b"".join(line + b"\n" for line in lines)
    proto = connect(max_length)
    feed(proto, data + PROBE, cuts)
    out = proto.transport.value().split(b"\n")
    assert out[-1] == b""  # every reply is a whole line
    replies = out[:-1]
    # an iterate answers its rows (here none) and an empty end line
    assert all(REPLY.fullmatch(r) for r in replies if r != b"")
    assert len(replies) == replies_expected(lines) + 1
    assert replies[-1] == b"O1"  # the probe: the connection still serves
    assert not proto.transport.disconnecting


@settings(max_examples=200, deadline=None)
@given(LINES, st.lists(st.integers(0, 600), max_size=6))
def test_splitting_the_input_never_changes_the_replies(lines, cuts):
    data = b"".join(line.replace(b"\n", b"") + b"\n" for line in lines) + PROBE
    whole, split = connect(), connect()
    whole.dataReceived(data)
    feed(split, data, cuts)
    assert split.transport.value() == whole.transport.value()


@settings(max_examples=200, deadline=None)
@given(LINES)
def test_changes_reach_the_handler_only_with_a_commit(lines):
    proto = connect()
    proto.dataReceived(b"".join(line.replace(b"\n", b"") + b"\n" for line in lines))
    committed = sum(1 for line in lines if line[:1] in (b"C", b"D"))
    assert len(proto.handler.commits) <= committed
    assert len(proto._transactions) <= sum(1 for line in lines if line[:1] == b"B")


FIELD = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["", "\x01", "\t", "\n", "\r", "\x011", "\x01t", "a\x01nb", "\udcff"])


@settings(max_examples=300, deadline=None)
@given(FIELD)
def test_tab_escaping_round_trips_and_leaves_no_separator(text):
    escaped = codec.tabescape(text)
    assert not set("\t\n\r") & set(escaped)
    assert codec.tabunescape(escaped) == text


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(codec.COMMANDS)), st.lists(FIELD, min_size=0, max_size=5))
def test_a_formatted_command_parses_back_to_its_fields(kind, fields):
    line = kind + "\t".join(codec.tabescape(f) for f in fields)
    expected = fields or [""]
    if len(expected) < codec.COMMANDS[kind][0]:
        with pytest.raises(codec.DictProtocolError):
            codec.parse_command(line)
        return
    cmd = codec.parse_command(line)
    assert cmd.kind == kind and list(cmd.args) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_any_line_parses_or_is_a_protocol_error(data):
    text = codec.decode_line(data.replace(b"\n", b""))
    try:
        cmd = codec.parse_command(text)
    except codec.DictProtocolError:
        return
    assert cmd.kind in codec.COMMANDS and len(cmd.args) >= codec.COMMANDS[cmd.kind][0]
    assert codec.encode_line(codec.format_ok(*cmd.args)).count(b"\n") == 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20), st.text(max_size=20))
def test_auth_keys_written_like_dovecot_split_back(password, user):
    def esc(s):
        return s.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
    assert codec.split_auth_key(f'{esc(password)}"{esc(user)}') == (password, user)
