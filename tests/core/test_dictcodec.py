import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services.core import dictcodec as c

ESCAPES = [
    ("plain", "plain"),
    ("", ""),
    ("a\tb", "a\x01tb"),
    ("line\nbreak", "line\x01nbreak"),
    ("cr\rhere", "cr\x01rhere"),
    ("\x01", "\x011"),
    ("\x01t", "\x011t"),  # an escape char followed by 't' must not become a TAB
    ("\t\r\n\x01", "\x01t\x01r\x01n\x011"),
    ("ünïcödé", "ünïcödé"),
]


@pytest.mark.parametrize("raw,escaped", ESCAPES)
def test_tabescape_round_trips(raw, escaped):
    assert c.tabescape(raw) == escaped
    assert c.tabunescape(escaped) == raw


@pytest.mark.parametrize("bad", ["\x01", "abc\x01", "\x01x"])
def test_invalid_escape_is_a_protocol_error(bad):
    with pytest.raises(c.DictProtocolError):
        c.tabunescape(bad)


PARSE = [
    ("H3\t2\t0\t\tauth", "H", ("3", "2", "0", "", "auth")),
    ("Lshared/userdb/a@b\ta@b", "L", ("shared/userdb/a@b", "a@b")),
    ("Lshared/x", "L", ("shared/x",)),
    ("I0\t0\tshared/userdb/\t", "I", ("0", "0", "shared/userdb/", "")),
    ("B1\tuser", "B", ("1", "user")),
    ("B1\tuser\t0", "B", ("1", "user", "0")),
    ("S1\tpriv/k\tv\x01tw", "S", ("1", "priv/k", "v\tw")),
    ("U1\tpriv/k", "U", ("1", "priv/k")),
    ("A1\tpriv/k\t-3", "A", ("1", "priv/k", "-3")),
    ("C7", "C", ("7",)),
    ("R7", "R", ("7",)),
]


@pytest.mark.parametrize("line,kind,args", PARSE)
def test_parse_command(line, kind, args):
    cmd = c.parse_command(line)
    assert (cmd.kind, cmd.args) == (kind, args)


@pytest.mark.parametrize("line", ["", "Z1", "S1\tkey", "U1", "A1\tk", "Lkey\x01z"])
def test_malformed_commands_raise(line):
    with pytest.raises(c.DictProtocolError):
        c.parse_command(line)


def test_replies_escape_their_fields():
    assert c.format_ok("a\tb") == "Oa\x01tb"
    assert c.format_fail("no\nway") == "Fno\x01nway"
    assert c.format_commit(True, "5") == "O5"
    assert c.format_commit(False, "5", "disk\tfull") == "F5\tdisk\x01tfull"
    assert c.format_iter_row("shared/userdb/a", "") == "Oshared/userdb/a\t"


SPLITS = [
    ('pw"user@x', ("pw", "user@x")),
    ('p\\"w"user@x', ('p"w', "user@x")),
    ("p\\\\w\\'\"u", ("p\\w'", "u")),
    ("user@x", ("user@x",)),
    ('""', ("", "", "")),
]


@pytest.mark.parametrize("key,parts", SPLITS)
def test_split_auth_key_undoes_percent_e_escaping(key, parts):
    assert c.split_auth_key(key) == parts


def test_split_auth_key_refuses_dangling_backslash():
    with pytest.raises(c.DictProtocolError):
        c.split_auth_key("pw\\")


def test_undecodable_bytes_survive_a_round_trip():
    raw = b"Lshared/passdb/\xff\xfe\"u@x"
    assert c.encode_line(c.decode_line(raw)) == raw + b"\n"


def slow_tabescape(text):
    table = {"\x01": "\x011", "\t": "\x01t", "\r": "\x01r", "\n": "\x01n"}
    return "".join(table.get(c, c) for c in text)


@given(st.text(alphabet=st.sampled_from("ab\x01\t\r\n1tnr\"\\ü")))
def test_escape_fast_path_agrees_with_the_character_by_character_rule(text):
    assert c.tabescape(text) == slow_tabescape(text)
    assert c.tabunescape(c.tabescape(text)) == text
    line = "L" + c.tabescape(text) + "\t" + c.tabescape(text + "x")
    assert c.parse_command(line).args == (text, text + "x")


@given(st.text(alphabet=st.sampled_from("ab\"ü")))
def test_auth_key_split_without_backslashes_equals_the_escaped_walk(rest):
    # the same key with every other character backslash-escaped takes the slow walk
    escaped = "".join(ch if ch == '"' else "\\" + ch for ch in rest) + "\\a"
    fast = c.split_auth_key(rest)
    assert fast[:-1] + (fast[-1] + "a",) == c.split_auth_key(escaped)
