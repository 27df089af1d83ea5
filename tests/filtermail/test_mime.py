"""MIME facts: RFC 3156 encryption, From, Secure-Join, setup messages, reports."""

import base64
import os
import random

import pytest

from chatmail_services.filtermail.mime import (
    Entity,
    check_encrypted,
    from_address,
    is_auto_submitted_report,
    is_autocrypt_setup_message,
    is_securejoin_request,
    parse_message,
)

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
        "garbage": bytes(random.Random(1).randrange(256) for _ in range(5000)),
    }


NOT_ENCRYPTED = list(_not_encrypted(b"", b""))


@pytest.mark.parametrize("name", NOT_ENCRYPTED)
def test_other_shapes_are_not_encrypted(armored, name):
    literal = b"-----BEGIN PGP MESSAGE-----\n\nywd1AGsEwtF4\n=HPF+\n-----END PGP MESSAGE-----\n"
    result = check_encrypted(parse_message(_not_encrypted(armored, literal)[name]))
    assert result.ok is False and result.reason


def test_random_truncations_of_an_encrypted_message_never_raise(make_eml, armored):
    message = make_eml("encrypted", from_addr=ALICE, to_addr=BOB, armored=armored.decode())
    rng = random.Random(2046)
    for end in rng.sample(range(len(message)), 300):
        assert check_encrypted(parse_message(message[:end])).ok in (True, False)


def test_random_garbage_never_raises():
    rng = random.Random(5322)
    alphabet = b"\r\n:;<>\"@=-_ \tabcFromContent-Type: multipart/\xff\x00"
    for _ in range(300):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(400)))
        entity = parse_message(data)
        for predicate in (check_encrypted, from_address, is_securejoin_request,
                          is_autocrypt_setup_message, is_auto_submitted_report):
            predicate(entity)


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
