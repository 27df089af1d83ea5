"""The filtermail verdicts: may this message be relayed? (DESIGN.md section 5)

Pure functions from an envelope (MAIL FROM, RCPT TOs) and the message bytes to
a ``Verdict``: a value saying accept or refuse, the SMTP reply for a refusal,
and a short stable ``reason`` for logs and metrics. The SMTP glue turns it into
a wire reply; an accepted message is answered 250 only once it has been
reinjected.

Each direction is an ordered table of (predicate, verdict); the first
predicate that holds decides, the fallback decides when none does.

Outgoing (mail submitted by our users): the From header must be exactly one
address equal to MAIL FROM; then encrypted mail, Secure-Join requests, a
self-sent Autocrypt Setup Message, passthrough senders and mail only to
passthrough recipients pass; other cleartext is refused with 523.

Incoming (mail for our users): encrypted mail, Secure-Join requests and
delivery reports pass; cleartext is refused with 523 if any recipient enforces
end-to-end encryption (``enforceE2EEincoming``), else it passes.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property

from .mime import (
    check_encrypted,
    from_address,
    is_auto_submitted_report,
    is_autocrypt_setup_message,
    is_securejoin_request,
    parse_message,
)

ENCRYPTION_NEEDED = "Encryption Needed: Invalid Unencrypted Mail"
MAILER_DAEMON = "mailer-daemon"


@dataclass(frozen=True)
class Verdict:
    """accept, or refuse with an SMTP `code` and `text`; `reason` is a stable
    token for metrics, `detail` free text for debug logs (never an address)."""

    accept: bool
    code: int
    text: str
    reason: str
    detail: str = ""

    @property
    def reply(self) -> str:
        """The SMTP reply line, e.g. "523 Encryption Needed: ..."."""
        return f"{self.code} {self.text}"


def _accepted(reason: str) -> Verdict:
    return Verdict(True, 250, "OK", reason)


ACCEPT_ENCRYPTED = _accepted("encrypted")
ACCEPT_SECUREJOIN = _accepted("securejoin")
ACCEPT_SETUP_MESSAGE = _accepted("autocrypt-setup-message")
ACCEPT_PASSTHROUGH_SENDER = _accepted("passthrough-sender")
ACCEPT_PASSTHROUGH_RECIPIENTS = _accepted("passthrough-recipients")
ACCEPT_BOUNCE = _accepted("bounce")
ACCEPT_CLEARTEXT = _accepted("cleartext-allowed")

REFUSE_CLEARTEXT = Verdict(False, 523, ENCRYPTION_NEEDED, "cleartext")
REFUSE_FROM_INVALID = Verdict(
    False, 550, "5.7.1 Message needs exactly one From header with one address",
    "from-invalid")
REFUSE_FROM_MISMATCH = Verdict(
    False, 550, "5.7.1 From header does not match envelope sender", "from-mismatch")
REFUSE_FOREIGN_SENDER = Verdict(
    False, 550, "5.7.1 Envelope sender is not an address of this relay",
    "foreign-sender")


def normalize_address(addr: str) -> str:
    """Envelope address without angle brackets, lower-cased; "" for the null sender."""
    return addr.strip().removeprefix("<").removesuffix(">").strip().lower()


def domain_of(addr: str) -> str:
    return addr.rpartition("@")[2]


class _Mail:
    """One message under judgement: the envelope, the policy, lazily derived facts."""

    def __init__(self, mail_from, rcpt_tos, message, **policy):
        self.mail_from = normalize_address(mail_from)
        self.rcpt_tos = [normalize_address(rcpt) for rcpt in rcpt_tos]
        self.entity = parse_message(message)
        self.policy = policy

    @cached_property
    def from_header(self) -> str | None:
        return from_address(self.entity)

    @cached_property
    def encryption(self):
        return check_encrypted(self.entity)


def _judge(rules, mail: _Mail, fallback: Verdict) -> Verdict:
    verdict = next((v for applies, v in rules if applies(mail)), fallback)
    if verdict.reason.startswith("cleartext"):
        # why the message did not count as encrypted, for debug logs
        return replace(verdict, detail=mail.encryption.reason)
    return verdict


def _foreign_sender(mail):
    domain = mail.policy["mail_domain"]
    return domain is not None and domain_of(mail.mail_from) != domain.lower()


def _from_header_invalid(mail):
    return mail.from_header is None


def _from_header_mismatch(mail):
    return mail.from_header != mail.mail_from


def _encrypted(mail):
    return mail.encryption.ok


def _securejoin_request(mail):
    return is_securejoin_request(mail.entity)


def _self_sent_setup_message(mail):
    self_sent = mail.rcpt_tos == [mail.mail_from] == [mail.from_header]
    return self_sent and is_autocrypt_setup_message(mail.entity)


def _passthrough_sender(mail):
    return mail.mail_from in {normalize_address(a) for a in mail.policy["senders"]}


def _passthrough_recipients(mail):
    entries = mail.policy["recipients"]
    return bool(mail.rcpt_tos) and all(
        recipient_matches_passthrough(rcpt, entries) for rcpt in mail.rcpt_tos)


def recipient_matches_passthrough(rcpt: str, entries: Iterable[str]) -> bool:
    """`rcpt` equals an entry, or its domain matches an "@domain" entry."""
    rcpt = normalize_address(rcpt)
    for entry in entries:
        entry = normalize_address(entry)
        if rcpt == entry or (entry.startswith("@") and domain_of(rcpt) == entry[1:]):
            return True
    return False


def _bounce(mail):
    # Bounces carry the null envelope sender (RFC 5321 section 4.5.5) and a
    # mailer-daemon From; either will do, as forwarders may rewrite the envelope.
    from_daemon = (mail.from_header or "").partition("@")[0] == MAILER_DAEMON
    return is_auto_submitted_report(mail.entity) and (not mail.mail_from or from_daemon)


def _a_recipient_enforces_e2ee(mail):
    enforces = mail.policy["enforces_e2ee"]
    return any(enforces(rcpt) for rcpt in mail.rcpt_tos)


OUTGOING_RULES = (
    (_foreign_sender, REFUSE_FOREIGN_SENDER),
    (_from_header_invalid, REFUSE_FROM_INVALID),
    (_from_header_mismatch, REFUSE_FROM_MISMATCH),
    (_encrypted, ACCEPT_ENCRYPTED),
    (_securejoin_request, ACCEPT_SECUREJOIN),
    (_self_sent_setup_message, ACCEPT_SETUP_MESSAGE),
    (_passthrough_sender, ACCEPT_PASSTHROUGH_SENDER),
    (_passthrough_recipients, ACCEPT_PASSTHROUGH_RECIPIENTS),
)

INCOMING_RULES = (
    (_encrypted, ACCEPT_ENCRYPTED),
    (_securejoin_request, ACCEPT_SECUREJOIN),
    (_bounce, ACCEPT_BOUNCE),
    (_a_recipient_enforces_e2ee, REFUSE_CLEARTEXT),
)


def outgoing_verdict(mail_from: str, rcpt_tos: list[str], message: bytes,
                     passthrough_senders: Iterable[str] = (),
                     passthrough_recipients: Iterable[str] = (),
                     mail_domain: str | None = None) -> Verdict:
    """Judge a message our user submitted. With `mail_domain`, MAIL FROM must be ours."""
    mail = _Mail(mail_from, rcpt_tos, message, mail_domain=mail_domain,
                 senders=tuple(passthrough_senders),
                 recipients=tuple(passthrough_recipients))
    return _judge(OUTGOING_RULES, mail, REFUSE_CLEARTEXT)


def incoming_verdict(mail_from: str, rcpt_tos: list[str], message: bytes,
                     enforces_e2ee: Callable[[str], bool]) -> Verdict:
    """Judge a message for our users; `enforces_e2ee(rcpt)` is the per-account switch.

    Exceptions from `enforces_e2ee` (a failing store) propagate: the caller
    answers them with a temporary failure.
    """
    mail = _Mail(mail_from, rcpt_tos, message, enforces_e2ee=enforces_e2ee)
    return _judge(INCOMING_RULES, mail, ACCEPT_CLEARTEXT)
