"""Structural check that an armored OpenPGP message is encrypted and nothing else.

filtermail must tell ciphertext from cleartext without keys, so it looks at the
shape only: the ASCII armor (RFC 9580 section 6.2, formerly RFC 4880 section
6.2) and then the sequence of packet headers (RFC 9580 section 4.2). An
encrypted message is any number (at least one) of session key packets (PKESK,
tag 1; SKESK, tag 3) followed by exactly one Symmetrically Encrypted and
Integrity Protected Data packet (SEIPD, tag 18, version 1 or 2) that ends the
data. Anything else -- literal data, compressed data, signatures, the
unprotected SED packet (tag 9), trailing bytes -- is refused.

Nothing is parsed or decrypted: packet bodies are skipped by their lengths, so
a 25 MB message costs one validating regex pass, one base64 decode and a walk
over the few packet headers. Hostile input never raises; it is refused with a
reason.
"""

import binascii
import re
from dataclasses import dataclass

PKESK = 1
SKESK = 3
SEIPD = 18
SESSION_KEY_TAGS = frozenset({PKESK, SKESK})
# Only these may use partial body lengths (RFC 9580 section 4.2.1.4).
DATA_PACKET_TAGS = frozenset({8, 9, 11, 18, 20})
SEIPD_VERSIONS = frozenset({1, 2})
MIN_FIRST_PARTIAL = 512  # "The first partial length MUST be at least 512 octets"
# Bounds on the Python-level walk, far above what encoders produce (a 25 MB
# message in 512-octet chunks has 50,000); without them a hostile message of
# 1-octet chunks or empty packets costs seconds of CPU instead of milliseconds.
MAX_PARTIAL_CHUNKS = 1 << 17
MAX_SESSION_KEY_PACKETS = 1 << 16

# BEGIN line, armor headers ("Key: Value", e.g. Version or Comment), and the
# blank line before the body; leading blank lines and trailing blanks tolerated.
_ARMOR_HEAD = re.compile(
    rb"\s*-----BEGIN PGP MESSAGE-----[ \t]*\r?\n"
    rb"(?:[^\s:]+:[^\r\n]*\r?\n)*"
    rb"(?:[ \t]*\r?\n)?"
)
_ARMOR_END = re.compile(rb"-----END PGP MESSAGE-----")
_WHITESPACE = re.compile(rb"\s*")
# The optional CRC24 line "=XXXX" right before the END line.
_CRC_LINE = re.compile(rb"\n=[A-Za-z0-9+/]{4}[ \t]*\r?\n")
_CRC_LINE_MAX = 64
# Base64 alphabet with line breaks and blanks, padding only at the very end.
_BASE64_BODY = re.compile(rb"[A-Za-z0-9+/ \t\r\n]*(?:=[ \t\r\n]*){0,2}")


@dataclass(frozen=True)
class PgpCheck:
    """Outcome of a check: truthy when the data is an encrypted message."""

    ok: bool
    reason: str

    def __bool__(self):
        return self.ok


ENCRYPTED = PgpCheck(True, "encrypted")


class _Refused(Exception):
    """Internal: the walk stops here; carries the reason."""


def check_armored_pgp_message(data) -> PgpCheck:
    """Check ASCII-armored `data` (bytes or memoryview) for an encrypted message."""
    try:
        return _walk(_dearmor(data))
    except _Refused as refused:
        return PgpCheck(False, str(refused))


def check_packets(data) -> PgpCheck:
    """Walk the packet headers of binary OpenPGP `data` (RFC 9580 section 4.2)."""
    try:
        return _walk(data)
    except _Refused as refused:
        return PgpCheck(False, str(refused))


def dearmor(data) -> bytes | None:
    """The binary packets inside a PGP MESSAGE armor, or None."""
    try:
        return _dearmor(data)
    except _Refused:
        return None


def _dearmor(data):
    buf = memoryview(data)
    head = _ARMOR_HEAD.match(buf)
    end = head and _ARMOR_END.search(buf, head.end())
    if not end or buf[end.start() - 1] != ord("\n"):
        raise _Refused("not an armored PGP MESSAGE")
    if not _WHITESPACE.fullmatch(buf, end.end()):
        raise _Refused("data after the armor END line")
    body_start = head.end()
    body_end = _strip_crc_line(buf, body_start, end.start())
    if not _BASE64_BODY.fullmatch(buf, body_start, body_end):
        raise _Refused("bad base64 in armor")
    try:
        # The regex above already refused every non-alphabet byte, so the
        # lenient decoder only skips line breaks here; padding is still checked.
        return binascii.a2b_base64(buf[body_start:body_end])
    except binascii.Error:
        raise _Refused("bad base64 in armor") from None


def _strip_crc_line(buf, body_start, end_line):
    """Return where the base64 lines end: before the CRC24 line if there is one."""
    window = max(body_start - 1, end_line - _CRC_LINE_MAX)
    crc = None
    for crc in _CRC_LINE.finditer(buf, window, end_line):
        pass
    if crc is not None and crc.end() == end_line:
        return crc.start() + 1
    return end_line


def _walk(data):
    pos, session_keys = 0, 0
    while pos < len(data):
        tag, body, end = _packet(data, pos)
        if tag == SEIPD:
            return _final_seipd(data, body, end, session_keys)
        if tag not in SESSION_KEY_TAGS:
            raise _Refused(f"packet tag {tag} is not a session key or SEIPD")
        session_keys += 1
        if session_keys > MAX_SESSION_KEY_PACKETS:
            raise _Refused("too many session key packets")
        pos = end
    raise _Refused("no SEIPD packet" if data else "no packets")


def _final_seipd(data, body, end, session_keys):
    if not session_keys:
        raise _Refused("SEIPD without a preceding session key packet")
    if end != len(data):
        raise _Refused("data after the SEIPD packet")
    if body == end:
        raise _Refused("empty SEIPD packet")
    version = data[body]
    if version not in SEIPD_VERSIONS:
        raise _Refused(f"SEIPD version {version} is not 1 or 2")
    return ENCRYPTED


def _packet(data, pos):
    """Return (tag, body offset, end offset) of the packet at `pos`."""
    ctb = _byte(data, pos)
    if not ctb & 0x80:
        raise _Refused("not a packet header")
    if ctb & 0x40:
        tag, body, end = _new_format(data, pos + 1, ctb & 0x3F)
    else:
        tag, body, end = _legacy_format(data, pos + 1, ctb)
    if end > len(data):
        raise _Refused("truncated packet")
    return tag, body, end


def _legacy_format(data, pos, ctb):
    """Legacy ("old format") header: tag in bits 5-2, length type in bits 1-0."""
    tag, length_type = (ctb >> 2) & 0x0F, ctb & 0x03
    if length_type == 3:  # indeterminate: the packet runs to the end of the data
        return tag, pos, len(data)
    size = (1, 2, 4)[length_type]
    length = int.from_bytes(_take(data, pos, size), "big")
    return tag, pos + size, pos + size + length


def _new_format(data, pos, tag):
    length, size, partial = _new_length(data, pos)
    body = pos + size
    if not partial:
        return tag, body, body + length
    if tag not in DATA_PACKET_TAGS:
        raise _Refused(f"partial body length on packet tag {tag}")
    if length < MIN_FIRST_PARTIAL:
        raise _Refused("first partial body length below 512 octets")
    return tag, body, _end_of_partial_chain(data, body + length)


def _end_of_partial_chain(data, pos):
    """Follow partial chunks until the one with a definite length ends the packet."""
    for _ in range(MAX_PARTIAL_CHUNKS):
        length, size, partial = _new_length(data, pos)
        pos += size + length
        if not partial:
            return pos
    raise _Refused("too many partial body chunks")


def _new_length(data, pos):
    """Decode a new-format length at `pos`: (length, octets used, is partial)."""
    first = _byte(data, pos)
    if first < 192:
        return first, 1, False
    if first < 224:
        return ((first - 192) << 8) + _byte(data, pos + 1) + 192, 2, False
    if first == 255:
        return int.from_bytes(_take(data, pos + 1, 4), "big"), 5, False
    return 1 << (first & 0x1F), 1, True


def _byte(data, pos):
    if pos >= len(data):
        raise _Refused("truncated packet header")
    return data[pos]


def _take(data, pos, size):
    if pos + size > len(data):
        raise _Refused("truncated packet header")
    return data[pos:pos + size]
