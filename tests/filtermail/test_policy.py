"""Outgoing and incoming verdicts on real messages, and the replies they become."""

import dataclasses

import pytest

from chatmail_services.core.failures import Refused
from chatmail_services.filtermail.mail import Envelope, Mail
from chatmail_services.filtermail.policy import (
    CLEARTEXT,
    INCOMING_RULES,
    OUTGOING_RULES,
    Accepted,
    Incoming,
    Outgoing,
    incoming_verdict,
    outgoing_verdict,
    recipient_matches_passthrough,
)
from chatmail_services.filtermail.smtp import REPLIES, reply_for

DOMAIN = "chat.example.org"
ALICE, BOB, CAROL = f"alice@{DOMAIN}", "bob@example.net", f"carol@{DOMAIN}"
ENCRYPTION_NEEDED = "523 Encryption Needed: Invalid Unencrypted Mail"


@pytest.fixture
def eml(make_eml, armored):
    """Build a message from a template with sensible defaults."""

    def make(template, from_addr=ALICE, to_addr=BOB, **fields):
        fields.setdefault("armored", armored.decode())
        fields.setdefault("step", "vc-request")
        fields.setdefault("text", f"Secure-Join: {fields['step']}")
        fields.setdefault("from_domain", "mx.example.net")
        return make_eml(template, from_addr=from_addr, to_addr=to_addr, **fields)

    return make


def mail_of(message, mail_from, rcpt_tos):
    return Mail(Envelope(mail_from, rcpts=[(rcpt, ()) for rcpt in rcpt_tos]), message)


def outgoing(message, mail_from=ALICE, rcpt_tos=(BOB,), mail_domain=DOMAIN,
             passthrough_senders=(), passthrough_recipients=()):
    policy = Outgoing.of(mail_domain, passthrough_senders, passthrough_recipients)
    return outgoing_verdict(mail_of(message, mail_from, rcpt_tos), policy)


def accepted(verdict) -> bool:
    return isinstance(verdict, Accepted)


def reply(verdict) -> str:
    return str(reply_for(verdict))


# --- outgoing ----------------------------------------------------------------


def test_encrypted_mail_passes_outgoing(eml):
    assert outgoing(eml("encrypted")) == Accepted("encrypted")


@pytest.mark.parametrize("name", ["pgpy-rsa", "pgpy-two-recipients",
                                  "gnupg-large-partial-lengths"])
def test_real_encrypted_messages_pass_outgoing(eml, encrypted_message, name):
    assert accepted(outgoing(eml("encrypted", armored=encrypted_message(name).decode())))


def test_cleartext_is_refused_with_523(eml):
    verdict = outgoing(eml("plain"))
    assert reply(verdict) == ENCRYPTION_NEEDED
    assert verdict == Refused("cleartext", "not multipart/encrypted")


def test_from_header_is_compared_case_insensitively(eml):
    assert accepted(outgoing(eml("encrypted", from_addr=ALICE.upper())))
    assert accepted(outgoing(eml("encrypted"), mail_from=f"<{ALICE.title()}>"))


@pytest.mark.parametrize("template", ["encrypted", "plain", "securejoin"])
def test_from_header_not_matching_envelope_sender_is_refused(eml, template):
    verdict = outgoing(eml(template, from_addr=CAROL))
    assert reply(verdict) == "550 5.7.1 From header does not match envelope sender"
    assert verdict.reason == "from-mismatch"


@pytest.mark.parametrize("change", [
    (b"From: <alice@chat.example.org>\r\n", b""),
    (b"From: <alice@chat.example.org>",
     b"From: <alice@chat.example.org>\r\nFrom: <alice@chat.example.org>"),
    (b"From: <alice@chat.example.org>", b"From: alice@chat.example.org, carol@chat.example.org"),
    (b"From: <alice@chat.example.org>", b"From: alice"),
])
def test_missing_or_repeated_from_is_refused(eml, change):
    verdict = outgoing(eml("encrypted").replace(*change))
    assert reply(verdict) == "550 5.7.1 Message needs exactly one From header with one address"


@pytest.mark.parametrize("mail_from", ["", "<>", "mallory@evil.example"])
def test_envelope_sender_of_another_domain_is_refused(eml, mail_from):
    verdict = outgoing(eml("encrypted"), mail_from=mail_from)
    assert (reply_for(verdict).code, verdict.reason) == (550, "foreign-sender")


def test_without_mail_domain_only_the_from_header_binds_the_sender(eml):
    foreign = "mallory@evil.example"
    message = eml("encrypted", from_addr=foreign)
    assert accepted(outgoing(message, mail_from=foreign, mail_domain=None))
    assert outgoing(eml("encrypted"), mail_from="", mail_domain=None).reason == "from-mismatch"


@pytest.mark.parametrize("step", ["vc-request", "vg-request"])
def test_securejoin_request_passes_outgoing(eml, step):
    assert outgoing(eml("securejoin", step=step)).reason == "securejoin"


def test_securejoin_header_with_other_text_is_refused(eml):
    assert reply(outgoing(eml("securejoin", text="here is my secret"))) == ENCRYPTION_NEEDED


def test_self_sent_autocrypt_setup_message_passes(eml):
    verdict = outgoing(eml("asm", to_addr=ALICE), rcpt_tos=[ALICE.upper()])
    assert verdict.reason == "autocrypt-setup-message"


@pytest.mark.parametrize("rcpt_tos", [[BOB], [ALICE, BOB], [CAROL]])
def test_autocrypt_setup_message_to_someone_else_is_refused(eml, rcpt_tos):
    assert reply(outgoing(eml("asm", to_addr=ALICE), rcpt_tos=rcpt_tos)) == ENCRYPTION_NEEDED


def test_passthrough_sender_may_send_cleartext(eml):
    verdict = outgoing(eml("plain"), passthrough_senders=[ALICE.upper()])
    assert verdict.reason == "passthrough-sender"
    assert reply(outgoing(eml("plain"), passthrough_senders=[CAROL])) == ENCRYPTION_NEEDED


@pytest.mark.parametrize("rcpt_tos, entries, accepted", [
    ([BOB], [BOB], True),
    ([BOB.upper()], [BOB], True),
    ([BOB], ["@example.net"], True),
    ([BOB, "privacy@example.net"], ["@EXAMPLE.NET"], True),
    ([BOB, CAROL], ["@example.net", CAROL], True),
    ([BOB, CAROL], ["@example.net"], False),
    (["bob@sub.example.net"], ["@example.net"], False),
    (["bob@badexample.net"], ["@example.net"], False),
    ([BOB], ["other@example.net"], False),
    ([], ["@example.net"], False),
])
def test_cleartext_to_only_passthrough_recipients_passes(eml, rcpt_tos, entries, accepted):
    verdict = outgoing(eml("plain"), rcpt_tos=rcpt_tos, passthrough_recipients=entries)
    assert isinstance(verdict, Accepted) is accepted
    assert verdict.reason == ("passthrough-recipients" if accepted else "cleartext")


@pytest.mark.parametrize("message", [b"", b"\xff\xfe\x00garbage",
                                     b"From: <alice@chat.example.org>"])
def test_hostile_messages_get_a_verdict_not_an_exception(message):
    assert isinstance(outgoing(message), Refused)
    assert isinstance(incoming_with(lambda rcpt: True, message, ""), Refused)


def test_recipient_matches_passthrough_by_address_or_domain():
    assert recipient_matches_passthrough("<Bob@Example.net>", ["@example.net"])
    assert not recipient_matches_passthrough("bob@example.net", ["@net"])


# --- incoming ----------------------------------------------------------------


def incoming(message, mail_from=BOB, rcpt_tos=(ALICE,), enforcing=()):
    return incoming_with(lambda rcpt: rcpt in enforcing, message, mail_from, rcpt_tos)


def incoming_with(enforces_e2ee, message, mail_from=BOB, rcpt_tos=(ALICE,)):
    return incoming_verdict(mail_of(message, mail_from, rcpt_tos), Incoming(enforces_e2ee))


def test_encrypted_mail_passes_incoming(eml):
    assert incoming(eml("encrypted", from_addr=BOB), enforcing={ALICE}).reason == "encrypted"


def test_incoming_cleartext_refused_when_a_recipient_enforces_e2ee(eml):
    message = eml("plain", from_addr=BOB, to_addr=ALICE)
    assert reply(incoming(message, enforcing={ALICE})) == ENCRYPTION_NEEDED
    assert reply(incoming(message, rcpt_tos=[CAROL, ALICE], enforcing={ALICE})) == ENCRYPTION_NEEDED


def test_incoming_cleartext_accepted_when_no_recipient_enforces_e2ee(eml):
    verdict = incoming(eml("plain", from_addr=BOB), rcpt_tos=[ALICE, CAROL])
    assert verdict == Accepted("cleartext-allowed")


def test_enforcement_is_asked_with_normalized_recipients(eml):
    asked = []
    incoming_with(asked.append, eml("plain", from_addr=BOB), rcpt_tos=["<Alice@Chat.Example.org>"])
    assert asked == [ALICE]


def test_enforcement_is_not_asked_for_encrypted_mail_and_store_errors_propagate(eml):
    def broken_store(rcpt):
        raise OSError("store down")

    assert accepted(incoming_with(broken_store, eml("encrypted", from_addr=BOB)))
    with pytest.raises(OSError):
        incoming_with(broken_store, eml("plain", from_addr=BOB))


def test_securejoin_request_passes_incoming(eml):
    assert incoming(eml("securejoin", from_addr=BOB), enforcing={ALICE}).reason == "securejoin"


@pytest.mark.parametrize("mail_from", ["", "<>", "MAILER-DAEMON@mx.example.net"])
def test_mailer_daemon_bounce_passes_incoming(eml, mail_from):
    verdict = incoming(eml("bounce", to_addr=ALICE), mail_from=mail_from, enforcing={ALICE})
    assert verdict.reason == "bounce"


@pytest.mark.parametrize("mail_from, change", [
    ("", (b"Auto-Submitted: auto-replied\r\n", b"")),
    ("", (b"multipart/report", b"multipart/mixed")),
    ("bob@example.net", (b"MAILER-DAEMON@mx.example.net", b"bob@example.net")),
])
def test_report_lookalikes_are_cleartext(eml, mail_from, change):
    message = eml("bounce", to_addr=ALICE).replace(*change)
    assert reply(incoming(message, mail_from=mail_from, enforcing={ALICE})) == ENCRYPTION_NEEDED


def test_null_sender_cleartext_is_refused_for_enforcing_recipient(eml):
    verdict = incoming(eml("plain", from_addr=BOB), mail_from="", enforcing={ALICE})
    assert reply_for(verdict).code == 523


def test_verdicts_are_frozen_values():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CLEARTEXT.reason = "encrypted"
    with pytest.raises(dataclasses.FrozenInstanceError):
        Accepted("encrypted").reason = "cleartext"


def test_every_refusal_of_the_policy_has_its_reply_in_the_table():
    refusals = [v for _, v in OUTGOING_RULES + INCOMING_RULES if isinstance(v, Refused)]
    for refusal in refusals + [CLEARTEXT]:
        assert refusal.reason in REPLIES and reply_for(refusal).code >= 500
