"""What kind of message is this? MIME facts for the filtermail verdicts.

A message is RFC 5322 bytes that may hold anything (8-bit, broken, hostile), so
it is treated as data: only header blocks go through the standard library's
``email`` parser (``compat32``, which keeps undecodable bytes as
surrogates); bodies stay bytes, and multipart
bodies are split on their boundary lines (RFC 2046 section 5.1.1) without
copying. That keeps a 25 MB message cheap to classify.

Recognised shapes:

- RFC 3156 OpenPGP/MIME encryption: ``multipart/encrypted`` with exactly two
  parts, ``application/pgp-encrypted`` ("Version: 1") and an armored
  ``application/octet-stream`` that passes ``openpgp.check_armored_pgp_message``;
- a Delta Chat Secure-Join request (https://securejoin.delta.chat/): header
  ``Secure-Join: vc-request`` or ``vg-request`` and one ``text/plain`` part
  whose text is exactly "Secure-Join: <step>" (sent as ``multipart/mixed``);
- an Autocrypt Setup Message (Autocrypt Level 1, "Autocrypt Setup Message"):
  ``Autocrypt-Setup-Message: v1`` on a ``multipart/mixed`` message;
- a delivery report (RFC 3464/6522 ``multipart/report``) marked
  ``Auto-Submitted`` (RFC 3834) with a value other than "no".
"""

import binascii
import re
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from .openpgp import PgpCheck, check_armored_pgp_message

SECURE_JOIN_REQUESTS = frozenset({"vc-request", "vg-request"})

_HEADER_PARSER = BytesHeaderParser(policy=compat32)
_END_OF_HEADERS = re.compile(rb"\n\r?\n")
_FOLDING = re.compile(r"\r?\n(?=[ \t])")
_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(?:\r?\n|\Z)")
_PGP_VERSION_1 = re.compile(rb"\s*Version:[ \t]*1\s*")
# dot-atom local part, then a domain name or an address literal such as
# [192.0.2.1] (IP-only relays); ASCII only: 8-bit bytes arrive as surrogates.
_ADDR_SPEC = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[A-Za-z0-9.-]+|\[[A-Za-z0-9.:]+\])")
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
_SECURE_JOIN_TEXT_MAX = 1024


def header_span(data) -> tuple[int, int]:
    """(header_end, body_start): where the header block ends (after its last
    line break) and the body begins (after the empty line, RFC 5322 section 2.1).
    Without an empty line everything is header."""
    if data[:1] == b"\n":
        return 0, 1
    if data[:2] == b"\r\n":
        return 0, 2
    if end := _END_OF_HEADERS.search(data):
        return end.start() + 1, end.end()
    return len(data), len(data)


class Entity:
    """A MIME entity (RFC 2045): parsed header block, body kept as a memoryview."""

    def __init__(self, headers: Message, body: memoryview):
        self.headers = headers
        self.body = body

    @classmethod
    def parse(cls, data) -> "Entity":
        """Split `data` (bytes or memoryview) at the first empty line."""
        return cls.from_span(data, *header_span(data))

    @classmethod
    def from_span(cls, data, header_end: int, body_start: int) -> "Entity":
        """The entity whose header block is data[:header_end], body data[body_start:]."""
        buf = memoryview(data)
        return cls(_HEADER_PARSER.parsebytes(bytes(buf[:header_end])), buf[body_start:])

    def header_values(self, name: str) -> list[str]:
        """All values of header `name`, unfolded, undecodable bytes as surrogates."""
        name = name.lower()
        return [_FOLDING.sub("", value) for key, value in self.headers.raw_items()
                if key.lower() == name]

    def header(self, name: str) -> str | None:
        """The value of header `name` if it occurs exactly once, stripped."""
        values = self.header_values(name)
        return values[0].strip() if len(values) == 1 else None

    @property
    def content_type(self) -> str | None:
        """Lower-case "type/subtype"; text/plain if absent; None if repeated."""
        if len(self.header_values("content-type")) > 1:
            return None
        return self.headers.get_content_type()

    @property
    def transfer_encoding(self) -> str | None:
        """Lower-case Content-Transfer-Encoding; 7bit if absent; None if repeated."""
        values = self.header_values("content-transfer-encoding")
        return values[0].strip().lower() if len(values) == 1 else (
            None if values else "7bit")

    def parts(self, expected: int) -> list["Entity"] | None:
        """The body parts of a multipart entity, or None unless exactly `expected`."""
        if not (self.content_type or "").startswith("multipart/"):
            return None
        if self.transfer_encoding not in _IDENTITY_ENCODINGS:  # RFC 2045 section 6.4
            return None
        boundary = self.headers.get_boundary()
        if not boundary:
            return None
        try:
            boundary = boundary.encode("ascii")
        except UnicodeError:
            return None
        spans = _part_spans(self.body, b"--" + boundary)
        if spans is None or len(spans) != expected:
            return None
        return [Entity.parse(self.body[start:end]) for start, end in spans]

    def decoded_body(self):
        """The body with its Content-Transfer-Encoding undone, or None if unknown."""
        encoding = self.transfer_encoding
        try:
            if encoding in _IDENTITY_ENCODINGS:
                return self.body
            if encoding == "base64":
                return binascii.a2b_base64(self.body)
            if encoding == "quoted-printable":
                return binascii.a2b_qp(self.body)
        except binascii.Error:
            pass
        return None


def _part_spans(body: memoryview, delimiter: bytes):
    """(start, end) of each part between delimiter lines; None without a close delimiter."""
    find = re.compile(re.escape(delimiter)).search
    spans, part_start, pos = [], None, 0
    while (hit := find(body, pos)) is not None:
        pos = hit.end()
        tail = _DELIMITER_TAIL.match(body, pos)
        if (hit.start() and body[hit.start() - 1] != ord("\n")) or tail is None:
            continue
        if part_start is not None:
            spans.append((part_start, _before_line_break(body, hit.start())))
        if tail.group(1):
            return spans
        part_start = pos = tail.end()
    return None


def _before_line_break(body, pos):
    """The line break before a delimiter belongs to the delimiter (RFC 2046)."""
    if pos and body[pos - 1] == ord("\n"):
        pos -= 1
        if pos and body[pos - 1] == ord("\r"):
            pos -= 1
    return pos


def parse_message(data) -> Entity:
    """The top-level entity of message `data` (`mail.Mail` holds the one of a
    received message). Like every function here it answers any input, however
    hostile, with a well-formed value and never raises: tests/filtermail/test_mime.py
    fuzzes that property."""
    return Entity.parse(data)


def from_address(entity: Entity) -> str | None:
    """The lower-cased address of the one From header with one address, else None."""
    value = entity.header("from")
    if value is None:
        return None
    addresses = _getaddresses(value)
    if len(addresses) != 1 or not _ADDR_SPEC.fullmatch(addresses[0][1]):
        return None
    return addresses[0][1].lower()


def _getaddresses(value):
    # Strict parsing where Python has it (the CVE-2023-27043 fix) ...
    addresses = getaddresses([value])
    if addresses != [("", "")] or "[" not in value:
        return addresses
    # ... but strict mode refuses every address literal, which IP-only relays use.
    try:
        return getaddresses([value], strict=False)
    except TypeError:  # a Python without the fix: the first call was lenient already
        return addresses


def check_encrypted(entity: Entity) -> PgpCheck:
    """Is `entity` an RFC 3156 encrypted message? The result says why not."""
    if entity.content_type != "multipart/encrypted":
        return PgpCheck(False, "not multipart/encrypted")
    parts = entity.parts(expected=2)
    if parts is None:
        return PgpCheck(False, "multipart/encrypted without exactly two parts")
    control, payload = parts
    if control.content_type != "application/pgp-encrypted":
        return PgpCheck(False, "first part is not application/pgp-encrypted")
    version = control.decoded_body()
    if version is None or not _PGP_VERSION_1.fullmatch(version):
        return PgpCheck(False, "first part is not Version: 1")
    if payload.content_type != "application/octet-stream":
        return PgpCheck(False, "second part is not application/octet-stream")
    armored = payload.decoded_body()
    if armored is None:
        return PgpCheck(False, "unknown transfer encoding")
    return check_armored_pgp_message(armored)


def is_securejoin_request(entity: Entity) -> bool:
    """A cleartext Secure-Join vc-request/vg-request as Delta Chat sends it."""
    step = (entity.header("secure-join") or "").lower()
    if step not in SECURE_JOIN_REQUESTS or entity.content_type != "multipart/mixed":
        return False
    parts = entity.parts(expected=1)
    if parts is None or parts[0].content_type != "text/plain":
        return False
    text = parts[0].decoded_body()
    if text is None or len(text) > _SECURE_JOIN_TEXT_MAX:
        return False
    return bytes(text).strip().lower() == b"secure-join: " + step.encode()


def is_autocrypt_setup_message(entity: Entity) -> bool:
    """Marked as an Autocrypt Setup Message (whether self-sent is the caller's check)."""
    marker = (entity.header("autocrypt-setup-message") or "").lower()
    return marker == "v1" and entity.content_type == "multipart/mixed"


def is_auto_submitted_report(entity: Entity) -> bool:
    """A multipart/report with Auto-Submitted other than "no": a bounce or similar."""
    auto_submitted = entity.header("auto-submitted") or ""
    keyword = auto_submitted.split(";")[0].strip().lower()
    return entity.content_type == "multipart/report" and keyword not in ("", "no")
