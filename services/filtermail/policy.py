"""The filtermail verdicts: may this message be relayed? (README, "Wiring Postfix")

Pure functions from a parsed `mail.Mail` to a verdict: `Accepted(reason)` or
a `core.failures.Refused(reason, detail)`. `reason` is a short stable token for
logs and metrics; a refusal's `text` says why for debug logs (never an
address). The SMTP edge turns a refusal into its reply (`smtp.REPLIES`); an
accepted message is answered 250 only once it has been reinjected.

Each direction is an ordered table of (predicate, verdict); the first
predicate that holds decides, the fallback decides when none does.

Outgoing (mail submitted by our users): the From header must be exactly one
address equal to MAIL FROM; then encrypted mail, Secure-Join requests, a
self-sent Autocrypt Setup Message, passthrough senders and mail only to
passthrough recipients pass; other cleartext is refused (523).

Incoming (mail for our users): encrypted mail, Secure-Join requests and
delivery reports pass; cleartext is refused (523) if any recipient enforces
end-to-end encryption (``enforceE2EEincoming``), else it passes.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..core.addresses import address_refusal
from ..core.failures import Refused
from .mail import Mail, domain_of, normalize_address
from .mime import is_auto_submitted_report, is_autocrypt_setup_message, is_securejoin_request

MAILER_DAEMON = "mailer-daemon"


@dataclass(frozen=True)
class Accepted:
    """The message may pass; `reason` is a stable token for metrics."""

    reason: str


@dataclass(frozen=True)
class Outgoing:
    """The outgoing policy from the config. With `mail_domain`, MAIL FROM must be ours."""

    mail_domain: str | None = None
    passthrough_senders: frozenset = field(default_factory=frozenset)
    passthrough_recipients: tuple = ()

    @classmethod
    def of(cls, mail_domain=None, senders: Iterable[str] = (),
           recipients: Iterable[str] = ()) -> "Outgoing":
        return cls(mail_domain and mail_domain.lower(),
                   frozenset(normalize_address(a) for a in senders), tuple(recipients))


@dataclass(frozen=True)
class Incoming:
    """The incoming policy: `enforces_e2ee(rcpt)` is the per-account switch."""

    enforces_e2ee: Callable[[str], bool]


def recipient_refusal(rcpt: str, mail_domain: str):
    """Why incoming mail cannot go to `rcpt` at all, or None (RCPT time).

    An address of our domain that can never be a mailbox (too long for a file
    name, unsafe characters) is refused for good: a 4xx would make the sender
    retry for days. Other domains are Postfix's business, not refused here.
    """
    refused = address_refusal(normalize_address(rcpt), mail_domain)
    if refused is None or refused.reason != "bad_address":
        return None
    return Refused("bad-recipient", refused.text)


def _foreign_sender(mail, policy):
    return policy.mail_domain is not None and domain_of(mail.sender) != policy.mail_domain


def _from_header_invalid(mail, policy):
    return mail.from_address is None


def _from_header_mismatch(mail, policy):
    return mail.from_address != mail.sender


def _encrypted(mail, policy):
    return mail.encryption.ok


def _securejoin_request(mail, policy):
    return is_securejoin_request(mail.entity)


def _self_sent_setup_message(mail, policy):
    self_sent = mail.recipients == [mail.sender] == [mail.from_address]
    return self_sent and is_autocrypt_setup_message(mail.entity)


def _passthrough_sender(mail, policy):
    return mail.sender in policy.passthrough_senders


def _passthrough_recipients(mail, policy):
    entries = policy.passthrough_recipients
    return bool(mail.recipients) and all(
        recipient_matches_passthrough(rcpt, entries) for rcpt in mail.recipients)


def recipient_matches_passthrough(rcpt: str, entries: Iterable[str]) -> bool:
    """`rcpt` equals an entry, or its domain matches an "@domain" entry."""
    rcpt = normalize_address(rcpt)
    for entry in entries:
        entry = normalize_address(entry)
        if rcpt == entry or (entry.startswith("@") and domain_of(rcpt) == entry[1:]):
            return True
    return False


def _bounce(mail, policy):
    # Bounces carry the null envelope sender (RFC 5321 section 4.5.5) and a
    # mailer-daemon From; either will do, as forwarders may rewrite the envelope.
    from_daemon = (mail.from_address or "").partition("@")[0] == MAILER_DAEMON
    return is_auto_submitted_report(mail.entity) and (not mail.sender or from_daemon)


def _a_recipient_enforces_e2ee(mail, policy):
    return any(policy.enforces_e2ee(rcpt) for rcpt in mail.recipients)


CLEARTEXT = Refused("cleartext")

OUTGOING_RULES = (
    (_foreign_sender, Refused("foreign-sender")),
    (_from_header_invalid, Refused("from-invalid")),
    (_from_header_mismatch, Refused("from-mismatch")),
    (_encrypted, Accepted("encrypted")),
    (_securejoin_request, Accepted("securejoin")),
    (_self_sent_setup_message, Accepted("autocrypt-setup-message")),
    (_passthrough_sender, Accepted("passthrough-sender")),
    (_passthrough_recipients, Accepted("passthrough-recipients")),
)

INCOMING_RULES = (
    (_encrypted, Accepted("encrypted")),
    (_securejoin_request, Accepted("securejoin")),
    (_bounce, Accepted("bounce")),
    (_a_recipient_enforces_e2ee, CLEARTEXT),
)


def _judge(rules, mail: Mail, policy, fallback):
    verdict = next((v for applies, v in rules if applies(mail, policy)), fallback)
    if verdict is CLEARTEXT:  # why the message did not count as encrypted, for debug logs
        return Refused(CLEARTEXT.reason, mail.encryption.reason)
    return verdict


def outgoing_verdict(mail: Mail, policy: Outgoing) -> Accepted | Refused:
    """Judge a message our user submitted."""
    return _judge(OUTGOING_RULES, mail, policy, CLEARTEXT)


def incoming_verdict(mail: Mail, policy: Incoming) -> Accepted | Refused:
    """Judge a message for our users.

    Exceptions from `enforces_e2ee` (a failing store) propagate: the SMTP edge
    answers them with a temporary failure.
    """
    return _judge(INCOMING_RULES, mail, policy, Accepted("cleartext-allowed"))
