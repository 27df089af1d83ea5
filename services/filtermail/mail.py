"""One mail transaction as filtermail received it, parsed once after DATA.

`Envelope` is what the SMTP commands said (kept verbatim: reinjection passes
it on); `Mail` adds the message: the raw bytes, where the header block ends
and the body starts, the parsed top-level MIME entity and the From address.
Verdicts (`policy`), DKIM verification and signing (`dkimcheck`) and
reinjection all take this one value; none of them splits the bytes again.
"""

from dataclasses import dataclass, field
from functools import cached_property

from .mime import Entity, check_encrypted, from_address, header_span


@dataclass
class Envelope:
    """One mail transaction: MAIL FROM (without <>; "" is the null sender),
    its ESMTP parameters, and the RCPTs with theirs, all as received."""

    mail_from: str
    mail_params: tuple = ()
    rcpts: list = field(default_factory=list)  # [(address, params)]
    xforward: tuple = ()  # the XFORWARD attribute strings received, e.g. "NAME=x"
    helo: str = ""

    @property
    def rcpt_tos(self) -> list:
        return [addr for addr, _ in self.rcpts]


def normalize_address(addr: str) -> str:
    """Envelope address without angle brackets, lower-cased; "" for the null sender."""
    return addr.strip().removeprefix("<").removesuffix(">").strip().lower()


def domain_of(addr: str) -> str:
    return addr.rpartition("@")[2]


class Mail:
    """The envelope and the message (bytes, undecoded and unstuffed), parsed once.

    `header_end` is the offset just after the header block's last line break,
    `body_start` the offset of the body (after the empty line); `entity` is the
    parsed top-level MIME entity, `from_address` the one From address or None.
    `sender` and `recipients` are the envelope addresses normalized for policy.
    """

    def __init__(self, envelope: Envelope, data):
        self.envelope = envelope
        self.data = data
        self.header_end, self.body_start = header_span(data)
        self.entity = Entity.from_span(data, self.header_end, self.body_start)
        self.from_address = from_address(self.entity)
        self.sender = normalize_address(envelope.mail_from)
        self.recipients = [normalize_address(rcpt) for rcpt in envelope.rcpt_tos]

    @property
    def header_block(self) -> bytes:
        return bytes(self.data[:self.header_end])

    @property
    def body(self):
        """The body as a slice of `data` (a copy; `entity.body` is a view)."""
        return self.data[self.body_start:]

    @cached_property
    def encryption(self):
        """Is this an RFC 3156 encrypted message? (`openpgp.PgpCheck`, says why not)"""
        return check_encrypted(self.entity)

    def __len__(self) -> int:
        return len(self.data)
