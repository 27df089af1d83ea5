"""The armor and packet-sequence check against real and hand-built OpenPGP data."""

import base64
import os
import random
import warnings

import pgpy
import pytest
from pgpy.constants import CompressionAlgorithm

from chatmail_services.filtermail.openpgp import (
    MAX_PARTIAL_CHUNKS,
    MAX_SESSION_KEY_PACKETS,
    check_armored_pgp_message,
    check_packets,
    dearmor,
)

# --- hand-built packets (RFC 9580 section 4.2) ---------------------------------


def crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor(binary: bytes, headers=(), crc=True, eol="\n", kind="MESSAGE") -> bytes:
    body = base64.b64encode(binary).decode()
    lines = [f"-----BEGIN PGP {kind}-----", *headers, ""]
    lines += [body[i:i + 64] for i in range(0, len(body), 64)]
    if crc:
        lines.append("=" + base64.b64encode(crc24(binary).to_bytes(3, "big")).decode())
    lines.append(f"-----END PGP {kind}-----")
    return (eol.join(lines) + eol).encode()


def new_length(length: int, octets: int) -> bytes:
    if octets == 1:
        return bytes([length])
    if octets == 2:
        length -= 192
        return bytes([(length >> 8) + 192, length & 0xFF])
    return b"\xff" + length.to_bytes(4, "big")


def packet(tag: int, body: bytes, octets: int = None) -> bytes:
    """New-format packet with the smallest (or the given) length encoding."""
    if octets is None:
        octets = 1 if len(body) < 192 else 2 if len(body) < 8384 else 5
    return bytes([0xC0 | tag]) + new_length(len(body), octets) + body


def partial_packet(tag: int, body: bytes, exponents) -> bytes:
    """New-format packet cut in partial chunks of 2**e octets, then a final chunk."""
    out, pos = bytearray([0xC0 | tag]), 0
    for exponent in exponents:
        out += bytes([224 + exponent]) + body[pos:pos + (1 << exponent)]
        pos += 1 << exponent
    return bytes(out + new_length(len(body) - pos, 5) + body[pos:])


def legacy_packet(tag: int, body: bytes, octets: int) -> bytes:
    length_type = {1: 0, 2: 1, 4: 2}[octets]
    return bytes([0x80 | tag << 2 | length_type]) + len(body).to_bytes(octets, "big") + body


PKESK_BODY = bytes([3]) + os.urandom(8) + bytes([18]) + os.urandom(80)
RSA_PKESK_BODY = bytes([3]) + os.urandom(8) + bytes([1]) + os.urandom(386)
SKESK_V6_BODY = bytes([6, 40, 9, 2, 3, 8]) + os.urandom(16) + os.urandom(40)
SEIPD_V1_BODY = bytes([1]) + os.urandom(300)
SEIPD_V2_BODY = bytes([2, 9, 2, 6]) + os.urandom(32) + os.urandom(600) + os.urandom(16)
PKESK, SKESK, SEIPD_V1 = packet(1, PKESK_BODY), packet(3, SKESK_V6_BODY), packet(18, SEIPD_V1_BODY)
BIG_SEIPD_BODY = bytes([1]) + os.urandom(70_000)

ACCEPTED_PACKETS = {
    "pkesk-seipd-v1": PKESK + SEIPD_V1,
    "skesk-v6-seipd-v2": SKESK + packet(18, SEIPD_V2_BODY),
    "many-session-keys": PKESK * 50 + SKESK * 3 + SEIPD_V1,
    "legacy-pkesk-1-octet-length": legacy_packet(1, PKESK_BODY, 1) + SEIPD_V1,
    "legacy-pkesk-2-octet-length": legacy_packet(1, PKESK_BODY, 2) + SEIPD_V1,
    "legacy-pkesk-4-octet-length": legacy_packet(1, PKESK_BODY, 4) + SEIPD_V1,
    "two-octet-lengths": packet(1, RSA_PKESK_BODY, 2) + packet(18, SEIPD_V1_BODY, 2),
    "five-octet-lengths": packet(1, PKESK_BODY, 5) + packet(18, SEIPD_V1_BODY, 5),
    "big-seipd": PKESK + packet(18, BIG_SEIPD_BODY),
    "partial-seipd": PKESK + partial_packet(18, BIG_SEIPD_BODY, [9, 13, 0, 14]),
    "partial-seipd-v2": SKESK + partial_packet(18, SEIPD_V2_BODY, [9]),
    "partial-seipd-empty-last-chunk": PKESK + partial_packet(18, bytes([1]) + bytes(1023), [9, 9]),
}

REFUSED_PACKETS = {
    "empty": b"",
    "seipd-without-session-key": SEIPD_V1,
    "seipd-before-pkesk": SEIPD_V1 + PKESK,
    "two-seipds": PKESK + SEIPD_V1 + SEIPD_V1,
    "trailing-garbage": PKESK + SEIPD_V1 + b"\x00",
    "trailing-marker-packet": PKESK + SEIPD_V1 + packet(10, b"PGP"),
    "only-session-keys": PKESK + SKESK,
    "literal-data": packet(11, b"b\x00\x00\x00\x00\x00hello"),
    "literal-after-pkesk": PKESK + packet(11, b"b\x00\x00\x00\x00\x00hello"),
    "compressed": PKESK + packet(8, b"\x00" + b"hello"),
    "sed-without-integrity": PKESK + packet(9, os.urandom(100)),
    "aead-encrypted-data": PKESK + packet(20, bytes([1, 9, 2, 6]) + os.urandom(100)),
    "signature": packet(2, os.urandom(100)) + PKESK + SEIPD_V1,
    "seipd-version-3": PKESK + packet(18, bytes([3]) + os.urandom(50)),
    "seipd-version-0": PKESK + packet(18, bytes([0]) + os.urandom(50)),
    "seipd-empty-body": PKESK + packet(18, b""),
    "partial-length-on-pkesk": (bytes([0xC1, 224 + 9]) + os.urandom(512)
                                + b"\x05" + bytes(5) + SEIPD_V1),
    "first-partial-chunk-too-short": PKESK + partial_packet(18, BIG_SEIPD_BODY, [4]),
    "partial-chain-never-ends": (PKESK + bytes([0xD2, 224 + 9, 1]) + bytes(511)
                                 + bytes([224 + 2]) + bytes(4)),
    "partial-chain-ends-in-header": PKESK + bytes([0xD2, 224 + 9, 1]) + bytes(511),
    "oversized-five-octet-length": PKESK + b"\xd2\xff\xff\xff\xff\xff" + bytes([1]) + bytes(100),
    "oversized-legacy-length": bytes([0x86]) + b"\xff\xff\xff\xff" + PKESK_BODY + SEIPD_V1,
    "truncated-seipd": PKESK + SEIPD_V1[:-1],
    "truncated-two-octet-length": PKESK + b"\xd2\xc5",
    "truncated-five-octet-length": PKESK + b"\xd2\xff\x00\x00",
    "header-byte-without-bit-7": b"\x01" + PKESK + SEIPD_V1,
    "legacy-indeterminate-pkesk": bytes([0x87]) + PKESK_BODY + SEIPD_V1,
    "reserved-tag-0": packet(0, b"x") + PKESK + SEIPD_V1,
}


@pytest.mark.parametrize("name", ACCEPTED_PACKETS)
def test_session_keys_then_one_seipd_is_encrypted(name):
    assert check_packets(ACCEPTED_PACKETS[name])
    assert check_armored_pgp_message(armor(ACCEPTED_PACKETS[name]))


@pytest.mark.parametrize("name", REFUSED_PACKETS)
def test_other_packet_sequences_are_not_encrypted(name):
    result = check_packets(REFUSED_PACKETS[name])
    assert not result and result.reason
    assert not check_armored_pgp_message(armor(REFUSED_PACKETS[name]))


def test_refusal_names_the_packet_that_is_not_allowed():
    assert check_packets(REFUSED_PACKETS["literal-data"]).reason == (
        "packet tag 11 is not a session key or SEIPD")


def one_octet_chunked_seipd(chunks: int) -> bytes:
    """A SEIPD: a 512-octet first chunk, `chunks` 1-octet partial chunks, an empty last one."""
    return bytes([0xD2, 224 + 9, 1]) + bytes(511) + b"\xe0\x00" * chunks + b"\x00"


def test_partial_chunk_count_is_bounded():
    assert check_packets(PKESK + one_octet_chunked_seipd(MAX_PARTIAL_CHUNKS - 1))
    refused = check_packets(PKESK + one_octet_chunked_seipd(MAX_PARTIAL_CHUNKS))
    assert refused.reason == "too many partial body chunks"


def test_session_key_packet_count_is_bounded():
    empty_pkesk = b"\xc1\x00"
    assert check_packets(empty_pkesk * MAX_SESSION_KEY_PACKETS + SEIPD_V1)
    refused = check_packets(empty_pkesk * (MAX_SESSION_KEY_PACKETS + 1) + SEIPD_V1)
    assert refused.reason == "too many session key packets"


# --- real messages -----------------------------------------------------------

REAL = ["pgpy-rsa", "pgpy-curve25519", "pgpy-two-recipients", "pgpy-passphrase",
        "pgpy-passphrase-and-key", "gnupg-small", "gnupg-large-partial-lengths",
        "gnupg-uncompressed", "gnupg-comment-header", "gnupg-symmetric"]


@pytest.mark.parametrize("name", REAL)
def test_real_encrypted_message_passes(encrypted_message, name):
    assert check_armored_pgp_message(encrypted_message(name)).ok


@pytest.mark.parametrize("name", REAL)
def test_real_encrypted_message_passes_with_crlf_and_trailing_blanks(encrypted_message, name):
    crlf = encrypted_message(name).replace(b"\n", b"  \r\n") + b"\r\n\r\n"
    assert check_armored_pgp_message(b"\r\n" + crlf)


def test_gnupg_stdin_message_really_uses_partial_lengths(gnupg, gnupg_messages):
    listing = gnupg.list_packets(gnupg_messages["gnupg-large-partial-lengths"])
    seipd = [line for line in listing.splitlines() if "tag=18" in line]
    assert len(seipd) == 1 and "partial" in seipd[0]


def test_gnupg_comment_header_is_present(gnupg_messages):
    assert b"\nComment: made by a test" in gnupg_messages["gnupg-comment-header"]


@pytest.mark.parametrize("text", ["hello", "x" * 5000])
def test_unencrypted_pgpy_messages_are_refused(text):
    for compression in (CompressionAlgorithm.Uncompressed, CompressionAlgorithm.ZIP):
        message = str(pgpy.PGPMessage.new(text, compression=compression)).encode()
        assert not check_armored_pgp_message(message)


def test_signed_pgpy_message_is_refused(pgpy_keys):
    message = pgpy.PGPMessage.new("signed, not encrypted")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        message |= pgpy_keys["ecc"].sign(message)
    assert not check_armored_pgp_message(str(message).encode())


# --- armor -------------------------------------------------------------------

GOOD = PKESK + SEIPD_V1

ACCEPTED_ARMOR = {
    "lf": armor(GOOD),
    "crlf": armor(GOOD, eol="\r\n"),
    "no-crc": armor(GOOD, crc=False),
    "version-and-comment-headers": armor(GOOD, ["Version: X 1.0", "Comment: hi: there"]),
    "trailing-whitespace": armor(GOOD).replace(b"\n", b" \t\n"),
    "blank-lines-around": b"\n\n" + armor(GOOD) + b"\n \n",
    "no-final-newline": armor(GOOD).rstrip(b"\n"),
    "no-blank-line-after-begin": armor(GOOD).replace(b"-----\n\n", b"-----\n", 1),
}

_GOOD_ARMOR = armor(GOOD)
REFUSED_ARMOR = {
    "empty": b"",
    "binary-not-armored": GOOD,
    "raw-base64": base64.encodebytes(GOOD),
    "signature-armor": armor(GOOD, kind="SIGNATURE"),
    "public-key-armor": armor(GOOD, kind="PUBLIC KEY BLOCK"),
    "missing-end": _GOOD_ARMOR.split(b"-----END")[0],
    "missing-begin": _GOOD_ARMOR.split(b"\n", 1)[1],
    "text-before-begin": b"Hello!\n" + _GOOD_ARMOR,
    "text-after-end": _GOOD_ARMOR + b"PS: cleartext\n",
    "second-armor-after-end": _GOOD_ARMOR + _GOOD_ARMOR,
    "end-not-at-line-start": _GOOD_ARMOR.replace(b"\n-----END", b"-----END"),
    "bad-base64-character": _GOOD_ARMOR.replace(b"\n", b"\n*", 3),
    "bad-base64-padding": armor(GOOD[:-1], crc=False).replace(b"=\n-----END", b"\n-----END"),
    "data-after-padding": armor(GOOD[:-1], crc=False).replace(b"=\n-----END", b"=AAAA\n-----END"),
    "cleartext-in-armor": (b"-----BEGIN PGP MESSAGE-----\n\nDefinitely not base64.\n"
                           b"-----END PGP MESSAGE-----\n"),
    "crc-only": b"-----BEGIN PGP MESSAGE-----\n\n=njUN\n-----END PGP MESSAGE-----\n",
    "base64-of-cleartext": armor(b"Hello, this is not OpenPGP at all."),
    "non-ascii-in-body": _GOOD_ARMOR.replace(b"\n", b"\n\xff", 3),
}


@pytest.mark.parametrize("name", ACCEPTED_ARMOR)
def test_armor_variants_are_accepted(name):
    assert check_armored_pgp_message(ACCEPTED_ARMOR[name]).ok


@pytest.mark.parametrize("name", REFUSED_ARMOR)
def test_broken_or_foreign_armor_is_refused(name):
    result = check_armored_pgp_message(REFUSED_ARMOR[name])
    assert result.ok is False and result.reason


def test_armor_check_accepts_a_memoryview_without_copying():
    data = b"prefix" + armor(GOOD) + b"suffix"
    assert check_armored_pgp_message(memoryview(data)[6:-6])


def test_dearmor_returns_the_binary_packets():
    assert dearmor(armor(GOOD, ["Comment: x"], eol="\r\n")) == GOOD


# --- never raises ------------------------------------------------------------


def test_every_truncation_of_a_packet_sequence_is_refused_without_raising():
    data = PKESK + partial_packet(18, bytes([1]) + bytes(2000), [9, 10])
    for end in range(len(data)):
        assert not check_packets(data[:end])
    assert check_packets(data)


def test_random_truncations_of_real_messages_never_raise(pgpy_messages, gnupg_messages):
    rng = random.Random(3156)
    for message in [*pgpy_messages.values(), *gnupg_messages.values()]:
        for end in rng.sample(range(len(message)), min(200, len(message))):
            assert check_armored_pgp_message(message[:end]).ok in (True, False)


def test_random_byte_flips_never_raise(gnupg_messages):
    rng = random.Random(4880)
    binary = dearmor(gnupg_messages["gnupg-large-partial-lengths"])
    for _ in range(1000):
        mutated = bytearray(binary[:3000])
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        assert check_packets(bytes(mutated)).ok in (True, False)
        assert check_armored_pgp_message(armor(bytes(mutated), crc=False)).ok in (True, False)


# --- property-based: packet streams built by the rules of RFC 9580 section 4.2 ----

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def any_form(draw, tag, body):
    """One packet with `body` in any legal header form: new format with any
    length encoding that fits, legacy (tags below 16), partial (data, >= 512)."""
    forms = ["new"] + (["legacy"] if tag < 16 else []) + (
        ["partial"] if tag == 18 and len(body) >= 512 else [])
    form = draw(st.sampled_from(forms))
    if form == "legacy":
        return legacy_packet(tag, body, draw(st.sampled_from(
            [o for o in (1, 2, 4) if len(body) < 1 << 8 * o])))
    if form == "partial":
        exponents = [9] + draw(st.lists(st.integers(0, 8), max_size=4))
        while sum(1 << e for e in exponents) > len(body):
            exponents.pop()
        return partial_packet(tag, body, exponents)
    fitting = [o for o, top in ((1, 192), (2, 8384), (5, 1 << 32)) if len(body) < top
               and not (o == 2 and len(body) < 192)]
    return packet(tag, body, draw(st.sampled_from(fitting)))


@st.composite
def encrypted_stream(draw):
    keys = [draw(any_form(draw(st.sampled_from([1, 3])), draw(st.binary(max_size=40))))
            for _ in range(draw(st.integers(1, 3)))]
    version = draw(st.sampled_from([b"\x01", b"\x02"]))
    size = draw(st.sampled_from([0, 20, 300, 700, 1500]))
    seipd = draw(any_form(18, version + draw(st.binary(min_size=size, max_size=size))))
    return b"".join(keys) + seipd


@settings(max_examples=300, deadline=None)
@given(encrypted_stream())
def test_session_keys_then_one_seipd_in_any_header_form_is_encrypted(stream):
    assert check_packets(stream).ok


@settings(max_examples=300, deadline=None)
@given(encrypted_stream(), st.integers(2, 19).filter(lambda t: t not in (1, 3)),
       st.binary(max_size=20))
def test_any_other_packet_after_the_seipd_makes_it_not_encrypted(stream, tag, body):
    check = check_packets(stream + packet(tag, body))
    assert not check.ok and check.reason


@settings(max_examples=300, deadline=None)
@given(encrypted_stream(), st.data())
def test_a_cut_or_a_changed_byte_gets_a_verdict_and_a_cut_is_never_encrypted(stream, data):
    end = data.draw(st.integers(0, len(stream) - 1))
    cut = check_packets(stream[:end])
    assert not cut.ok and cut.reason
    pos = data.draw(st.integers(0, len(stream) - 1))
    changed = bytearray(stream)
    changed[pos] ^= data.draw(st.integers(1, 255))
    check = check_packets(bytes(changed))
    assert type(check.ok) is bool and (check.ok or check.reason)
    armored = check_armored_pgp_message(armor(bytes(changed)))
    assert armored.ok is check.ok
