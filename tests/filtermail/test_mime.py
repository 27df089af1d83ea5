"""MIME facts: RFC 3156 encryption, From, Secure-Join, setup messages, reports."""

import base64
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatmail_services.filtermail.mail import Envelope, Mail
from chatmail_services.filtermail.mime import (
    Entity,
    check_encrypted,
    from_address,
    is_auto_submitted_report,
    is_autocrypt_setup_message,
    is_securejoin_request,
    parse_message,
)
from chatmail_services.filtermail.openpgp import PgpCheck
from chatmail_services.filtermail.policy import (
    Accepted, Incoming, Outgoing, incoming_verdict, outgoing_verdict,
)
from chatmail_services.filtermail.smtp import REPLIES

ALICE, BOB = "alice@chat.example.org", "bob@example.net"
VERSION_PART = ("Content-Type: application/pgp-encrypted", "Version: 1")


def multipart(parts, ctype="multipart/encrypted", boundary="b0undary", preamble="",
              headers=(), close=True) -> bytes:
    """A message from (part header block, part body) pairs."""
    lines = [f"From: <{ALICE}>", f"To: <{BOB}>", *headers,
             f'Content-Type: {ctype}; protocol="application/pgp-encrypted";',
             f' boundary="{boundary}"', "", preamble]
    for part_headers, body in parts:
        lines += [f"--{boundary}", part_headers, "", body]
    lines.append(f"--{boundary}--" if close else "")
    return "\r\n".join(lines).encode()


def payload_part(armored: bytes, headers="Content-Type: application/octet-stream"):
    return (headers, armored.decode())


def encrypted(armored: bytes, **kwargs) -> bytes:
    return multipart([VERSION_PART, payload_part(armored)], **kwargs)


@pytest.mark.parametrize("name", ["pgpy-curve25519", "pgpy-rsa", "gnupg-large-partial-lengths",
                                  "gnupg-comment-header", "gnupg-symmetric"])
@pytest.mark.parametrize("template", ["encrypted", "encrypted-thunderbird"])
def test_rfc3156_message_from_real_clients_is_encrypted(make_eml, encrypted_message,
                                                        name, template):
    message = make_eml(template, from_addr=ALICE, to_addr=BOB,
                       armored=encrypted_message(name).decode())
    assert check_encrypted(parse_message(message)).ok
    assert check_encrypted(parse_message(message.replace(b"\r\n", b"\n"))).ok


def test_base64_transfer_encoded_payload_is_encrypted(armored):
    part = ("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64",
            base64.encodebytes(armored).decode())
    assert check_encrypted(parse_message(multipart([VERSION_PART, part])))


@pytest.mark.parametrize("version", ["Version: 1", "Version:1", "\r\n  Version: 1  \r\n\r\n"])
def test_version_part_tolerates_whitespace(armored, version):
    message = multipart([("Content-Type: application/pgp-encrypted", version),
                         payload_part(armored)])
    assert check_encrypted(parse_message(message))


def test_non_utf8_and_huge_headers_do_not_hide_encryption(armored):
    huge = "Subject: " + "\r\n x".join(["word"] * 200_000)
    message = encrypted(armored, headers=["X-Junk: \xff\xfe", huge])
    message = message.replace("\xff\xfe".encode(), b"\xff\xfe\x80")
    assert check_encrypted(parse_message(message))


def _not_encrypted(armored, literal):
    return {
        "three-parts": multipart([VERSION_PART, payload_part(armored), VERSION_PART]),
        "one-part": multipart([payload_part(armored)]),
        "swapped-parts": multipart([payload_part(armored), VERSION_PART]),
        "nested-multipart": multipart([VERSION_PART, (
            'Content-Type: multipart/mixed; boundary="inner"',
            multipart([payload_part(armored)], boundary="inner").split(b"\r\n\r\n", 1)[1].decode(),
        )]),
        "no-close-delimiter": encrypted(armored, close=False),
        "version-2": multipart([("Content-Type: application/pgp-encrypted", "Version: 2"),
                                payload_part(armored)]),
        "first-part-text-plain": multipart([("Content-Type: text/plain", "Version: 1"),
                                            payload_part(armored)]),
        "second-part-text-plain": multipart([VERSION_PART,
                                             payload_part(armored, "Content-Type: text/plain")]),
        "literal-data-payload": encrypted(literal),
        "cleartext-payload": encrypted(b"Hello, I am not encrypted."),
        "multipart-mixed": encrypted(armored, ctype="multipart/mixed"),
        "unknown-transfer-encoding": multipart([VERSION_PART, payload_part(
            armored, "Content-Type: application/octet-stream\r\n"
                     "Content-Transfer-Encoding: x-uuencode")]),
        "two-content-type-headers": encrypted(armored, headers=["Content-Type: text/plain"]),
        "two-transfer-encodings": multipart([VERSION_PART, payload_part(
            armored, "Content-Type: application/octet-stream\r\n"
                     "Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit")]),
        "encoded-multipart": encrypted(armored, headers=["Content-Transfer-Encoding: base64"]),
        "boundary-not-at-line-start": encrypted(armored).replace(
            b"\r\n--b0undary\r\nContent-Type: app", b"\r\nx--b0undary\r\nContent-Type: app", 1),
        "empty": b"",
        "headers-only": f"From: {ALICE}\r\nContent-Type: multipart/encrypted".encode(),
        "plain": f"From: {ALICE}\r\n\r\nhello\r\n".encode(),
        "no-boundary": encrypted(armored).replace(b'boundary="b0undary"', b"x=y"),
        "garbage": random.Random(1).randbytes(5000),  # one generator, not one per byte
    }


NOT_ENCRYPTED = list(_not_encrypted(b"", b""))


@pytest.mark.parametrize("name", NOT_ENCRYPTED)
def test_other_shapes_are_not_encrypted(armored, name):
    literal = b"-----BEGIN PGP MESSAGE-----\n\nywd1AGsEwtF4\n=HPF+\n-----END PGP MESSAGE-----\n"
    result = check_encrypted(parse_message(_not_encrypted(armored, literal)[name]))
    assert result.ok is False and result.reason


# --- fuzzing: any bytes get a well-formed answer, no exception escapes ----------
# (nothing here catches exceptions for the code under test: one that escapes
# fails the test, and hypothesis shrinks it to a small example)

# What hostile MIME is made of: header fields that matter here with values from
# parameters (RFC 2231 ones too), encoded words, address syntax, 8-bit and NUL
# bytes; bodies of delimiter lines, part headers and armor.
NAMES = [b"From", b"FROM", b"Content-Type", b"Content-Transfer-Encoding", b"Secure-Join",
         b"Auto-Submitted", b"Autocrypt-Setup-Message", b"Subject", b"X-\xff", b" folded"]
WORDS = [b"multipart/encrypted", b"multipart/mixed", b"multipart/report", b"text/plain",
         b"application/pgp-encrypted", b"application/octet-stream", b"base64", b"7bit",
         b"quoted-printable", b"vc-request", b"auto-replied", b"no", b"v1", b"; ",
         b'boundary="b"', b"boundary=b", b"boundary*0*=", b"boundary*=", b"utf-8''",
         b"%ff", b"=?utf-8?q?", b"=?x?b?", b"?=", b"<", b">", b"@", b",", b'"', b"\\",
         b"(", b")", b":", b";", b"[", b"]", b" ", b"\t", b"alice@example.org",
         b"mailer-daemon@x", b"\xff", b"\xc3\xa9", b"\x00", b"\r\n ", b"\r"]
BODY = [b"--b\r\n", b"--b--\r\n", b"--b", b"--", b"\r\n", b"\n", b"\r\n\r\n",
        b"Content-Type: application/pgp-encrypted\r\n", b"Content-Type: text/plain\r\n",
        b"Content-Type: application/octet-stream\r\n", b"Version: 1", b"Secure-Join: vc-request",
        b"Content-Transfer-Encoding: base64\r\n", b"-----BEGIN PGP MESSAGE-----\n\n",
        b"wV4DDdgRiAbYitsSAQdA", b"=ow96\n", b"-----END PGP MESSAGE-----\n", b"\xff", b"x"]


def _joined(tokens, max_size):
    return st.lists(st.sampled_from(tokens), max_size=max_size).map(b"".join)


# whole values that give the predicates something to recognise, or token soup
VALUES = [b"auto-replied", b"multipart/report; boundary=b", b"multipart/mixed; boundary=b",
          b'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"',
          b"vc-request", b"v1", b"base64", b"<alice@example.org>", b"Alice <alice@[192.0.2.1]>"]
_FIELD = st.tuples(st.sampled_from(NAMES),
                   st.one_of(st.sampled_from(VALUES), _joined(WORDS, 12))).map(b": ".join)
_MESSAGE = st.tuples(st.lists(_FIELD, max_size=8).map(b"\r\n".join),
                     st.sampled_from([b"\r\n\r\n", b"\n\n", b"\r\n", b""]),
                     _joined(BODY, 30)).map(b"".join)
HOSTILE = st.one_of(_MESSAGE, st.binary(max_size=300))


def assert_well_formed_facts(entity):
    check = check_encrypted(entity)
    assert isinstance(check, PgpCheck) and type(check.ok) is bool
    assert check.ok or (isinstance(check.reason, str) and check.reason)
    addr = from_address(entity)
    assert addr is None or (addr == addr.lower() and addr.count("@") == 1)
    for predicate in (is_securejoin_request, is_autocrypt_setup_message,
                      is_auto_submitted_report):
        assert type(predicate(entity)) is bool


@settings(max_examples=400, deadline=None)
@given(HOSTILE)
def test_hostile_bytes_get_well_formed_facts(data):
    assert_well_formed_facts(parse_message(data))


@settings(max_examples=200, deadline=None)
@given(HOSTILE)
def test_hostile_bytes_get_a_verdict_with_a_reply(data):
    mail = Mail(Envelope(ALICE, rcpts=[(BOB, ())]), data)
    assert 0 <= mail.header_end <= mail.body_start <= len(data)
    verdicts = [outgoing_verdict(mail, Outgoing.of("chat.example.org")),
                incoming_verdict(mail, Incoming(lambda rcpt: True))]
    for verdict in verdicts:
        assert isinstance(verdict, Accepted) or verdict.reason in REPLIES


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_truncated_encrypted_message_is_encrypted_only_with_its_close_delimiter(
        make_eml, armored, data):
    message = make_eml("encrypted", from_addr=ALICE, to_addr=BOB, armored=armored.decode())
    end = data.draw(st.integers(0, len(message)))
    entity = parse_message(message[:end])
    assert_well_formed_facts(entity)
    close = b"--YFrteb74qSXmggbOxZL9dRnhymywAi--"
    # the close delimiter line must be whole: cut after its CR it is not a line yet
    closed = close in message[:end] and not message[:end].endswith(close + b"\r")
    assert check_encrypted(entity).ok is closed


@pytest.mark.parametrize("headers, expected", [
    ([f"From: {ALICE}"], ALICE),
    ([f"From: <{ALICE}>"], ALICE),
    ([f"From: Alice <{ALICE.upper()}>"], ALICE),
    ([f'From: "Alice, the first" <{ALICE}>'], ALICE),
    ([f"From: Alice\r\n <{ALICE}>"], ALICE),
    ([f"From: =?utf-8?q?Al=C3=AFce?= <{ALICE}>"], ALICE),
    ([f"FROM: {ALICE}"], ALICE),
    (["From: <alice@[192.0.2.1]>"], "alice@[192.0.2.1]"),
    (["From: alice@[IPv6:2001:db8::1]"], "alice@[ipv6:2001:db8::1]"),
    ([], None),
    ([f"From: {ALICE}", f"From: {BOB}"], None),
    ([f"From: {ALICE}, {BOB}"], None),
    (["From: "], None),
    (["From: not an address"], None),
    (["From: a@b@example.org"], None),
    (["From: undisclosed-recipients:;"], None),
    ([f"From: \udcff <{ALICE}>"], ALICE),
    (["From: \udcff@example.org"], None),
])
def test_from_address_needs_one_header_with_one_address(headers, expected):
    data = "\r\n".join([*headers, "Subject: x", "", "body"]).encode("utf-8", "surrogateescape")
    assert from_address(parse_message(data)) == expected


@pytest.mark.parametrize("step, text, expected", [
    ("vc-request", "Secure-Join: vc-request", True),
    ("vg-request", "Secure-Join: vg-request", True),
    ("VC-Request", "secure-join: vc-request", True),
    ("vc-request", "Secure-Join: vg-request", False),
    ("vc-auth-required", "Secure-Join: vc-auth-required", False),
    ("vc-request", "Hello, please add me! Here is my cleartext.", False),
    ("vc-request", "Secure-Join: vc-request\r\nand more text", False),
])
def test_securejoin_request_is_recognised(make_eml, step, text, expected):
    message = make_eml("securejoin", from_addr=ALICE, to_addr=BOB, step=step, text=text)
    assert is_securejoin_request(parse_message(message)) is expected


def test_securejoin_header_on_two_parts_is_not_a_request():
    part = ("Content-Type: text/plain", "Secure-Join: vc-request")
    message = multipart([part, part], ctype="multipart/mixed",
                        headers=["Secure-Join: vc-request"])
    assert not is_securejoin_request(parse_message(message))
    single = multipart([part], ctype="multipart/mixed", headers=["Secure-Join: vc-request"])
    assert is_securejoin_request(parse_message(single))


def test_securejoin_header_on_single_text_body_is_not_a_request():
    message = (b"Secure-Join: vc-request\r\nContent-Type: text/plain\r\n\r\n"
               b"Secure-Join: vc-request\r\n")
    assert not is_securejoin_request(parse_message(message))


@pytest.mark.parametrize("replace, expected", [
    ((b"", b""), True),
    ((b"Autocrypt-Setup-Message: v1", b"Autocrypt-Setup-Message: v2"), False),
    ((b"Autocrypt-Setup-Message: v1\r\n", b""), False),
    ((b"multipart/mixed", b"text/plain"), False),
])
def test_autocrypt_setup_message_is_recognised(make_eml, pgpy_messages, replace, expected):
    message = make_eml("asm", from_addr=ALICE, to_addr=ALICE,
                       armored=pgpy_messages["pgpy-passphrase"].decode())
    assert is_autocrypt_setup_message(parse_message(message.replace(*replace))) is expected


@pytest.mark.parametrize("replace, expected", [
    ((b"", b""), True),
    ((b"Auto-Submitted: auto-replied", b"Auto-Submitted: auto-generated"), True),
    ((b"Auto-Submitted: auto-replied", b"Auto-Submitted: no"), False),
    ((b"Auto-Submitted: auto-replied\r\n", b""), False),
    ((b"multipart/report", b"multipart/mixed"), False),
])
def test_auto_submitted_report_is_recognised(make_eml, replace, expected):
    message = make_eml("bounce", from_domain="mx.example.net", to_addr=ALICE)
    assert is_auto_submitted_report(parse_message(message.replace(*replace))) is expected


def test_parts_are_split_on_delimiter_lines_only():
    body = ("--b--x\r\n--b \t\r\nContent-Type: text/plain\r\n\r\none\r\n"
            "--b\r\n\r\ntwo\r\n--b--\r\nepilogue")
    entity = Entity.parse(b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + body.encode())
    parts = entity.parts(expected=2)
    assert [bytes(part.body) for part in parts] == [b"one", b"two"]
    assert parts[0].content_type == "text/plain"
    assert entity.parts(expected=3) is None


def test_parse_message_keeps_the_body_as_a_view_of_the_input():
    data = b"Subject: x\r\n\r\n" + os.urandom(1000)
    entity = parse_message(data)
    assert isinstance(entity.body, memoryview) and entity.body.obj is data
