"""filtermail between Debian's real Postfix and Dovecot, driven with smtplib and imaplib.

The relay is scripts/local_relay.py with its mail part (local_postfix.py):
conf/postfix/ and conf/dovecot/91-chatmail-postfix.conf rendered into a
fresh directory, a separate Postfix instance, both filters as vmail, and a
twisted.names DNS server on loopback that serves the DKIM keys.
"""

import email
import imaplib
import json
import os
import shutil
import smtplib
import ssl
import sys
import tempfile
import time
from pathlib import Path

import pytest

from chatmail_services.core.config import DkimSign
from chatmail_services.filtermail.dkimcheck import DkimSigner
from chatmail_services.filtermail.mail import Envelope, Mail

from dkim_keys import make_dkim_key  # scripts/
from .conftest import LocalRelay, imap_login

pytestmark = pytest.mark.integration

PASSWORD = "a-long-secret"
DATA = Path(__file__).resolve().parents[1] / "filtermail" / "data"


def start_relay(mode, **options):
    base = Path(tempfile.mkdtemp(prefix=f"chatmail-pf-{mode}-", dir="/tmp"))
    relay = LocalRelay(base, postfix=mode, **options)
    try:
        relay.start()
    except Exception:
        relay.stop()
        for log in sorted(base.glob("*.log")) + [base / "postfix/postfix.log",
                                                  base / "dovecot.stderr"]:
            if log.exists():
                sys.stderr.write(f"--- {log}\n{log.read_text()[-3000:]}\n")
        shutil.rmtree(base, ignore_errors=True)
        raise
    return relay


def running_relay(mode, **options):
    """A started relay for a module fixture (`yield from`), stopped and removed after."""
    relay = start_relay(mode, **options)
    yield relay
    relay.stop()
    shutil.rmtree(relay.base, ignore_errors=True)


@pytest.fixture(scope="module")
def relay():
    yield from running_relay("before")


@pytest.fixture(scope="module")
def after_queue_relay():
    yield from running_relay("after")


@pytest.fixture(scope="module")
def armored():
    return make_armored()


def make_armored() -> str:
    # one real encrypted message, made once (PGPy, curve25519 as Delta Chat uses)
    from ..filtermail.conftest import _pgpy_key, pgpy_encrypt
    from pgpy.constants import EllipticCurveOID, PubKeyAlgorithm

    key = _pgpy_key("ecc", (PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519),
                    (PubKeyAlgorithm.ECDH, EllipticCurveOID.Curve25519))
    return pgpy_encrypt("hello", [key]).decode()


_counter = iter(range(10 ** 6))


def account(relay) -> str:
    """A fresh account, created by its first IMAP login (doveauth)."""
    addr = f"u{os.getpid() % 1000:03d}{next(_counter):05d}@{relay.mail_domain}"
    imap_login(relay, addr, PASSWORD).logout()
    return addr


def eml(template, from_addr, to_addr, armored, **extra) -> bytes:
    text = (DATA / f"{template}.eml").read_text().format(
        from_addr=from_addr, to_addr=to_addr, armored=armored, **extra)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def submit(relay, login, mail_from, rcpts, message, port="submission"):
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", relay.mail.ports[port], timeout=60) as client:
        client.starttls(context=ctx)
        client.login(login, PASSWORD)
        return client.sendmail(mail_from, rcpts, message)


def dkim_signed(signer, message, *tamper):
    """The DKIM-Signature fields for `message`, then the message (`tamper`:
    a str.replace pair applied after signing)."""
    signature = signer.sign(Mail(Envelope("carol@sender.example"), message))
    return signature + (message.replace(*tamper) if tamper else message)


def send_port25(relay, mail_from, rcpts, message):
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", relay.mail.ports["smtp"], timeout=60) as client:
        client.starttls(context=ctx)  # port 25 requires TLS (setup's master.cf)
        return client.sendmail(mail_from, rcpts, message)


def dns_txt(relay):
    """A dkimpy `dnsfunc` answering from the relay's test zone (TXT records)."""
    zone = json.loads(relay.mail.zone.read_text())
    return lambda name, timeout=5: zone.get(name.decode().rstrip(".")).encode()


def inbox(relay, addr, count=1, timeout=30.0) -> list[bytes]:
    """Wait until INBOX holds `count` messages; return them raw."""
    deadline = time.monotonic() + timeout
    while True:
        conn = imap_login(relay, addr, PASSWORD)
        try:
            conn.select("INBOX")
            _, data = conn.search(None, "ALL")
            ids = data[0].split()
            if len(ids) >= count or time.monotonic() > deadline:
                return [conn.fetch(i, "(BODY.PEEK[])")[1][0][1] for i in ids]
        finally:
            conn.logout()
        time.sleep(0.2)


# --- before-queue: submission -> outgoing filter -> Postfix -> LMTP ---------


def test_cleartext_to_an_outside_address_is_refused_523_at_the_client(relay, armored):
    alice = account(relay)
    message = eml("plain", alice, "bob@example.net", armored)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        submit(relay, alice, alice, ["bob@example.net"], message)
    assert refused.value.smtp_code == 523
    assert refused.value.smtp_error == b"Encryption Needed: Invalid Unencrypted Mail"


def test_encrypted_mail_arrives_byte_identical_without_trace_or_signature(relay, armored):
    alice, bob = account(relay), account(relay)
    message = eml("encrypted", alice, bob, armored)
    assert submit(relay, alice, alice, [bob], message) == {}
    (delivered,) = inbox(relay, bob)
    # Dovecot prepends Return-Path and Delivered-To; the message itself is
    # untouched, and the mailbox keeps neither the route nor our signature
    # (outgoing signatures are verified in test_privacy.py)
    assert delivered.endswith(message)
    prepended = delivered[:-len(message)]
    assert b"DKIM-Signature:" not in prepended and b"Received:" not in prepended


def test_from_header_forgery_is_refused(relay, armored):
    alice, carol = account(relay), account(relay)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        submit(relay, alice, alice, [carol], eml("encrypted", carol, carol, armored))
    assert refused.value.smtp_code == 550
    assert b"From header does not match envelope sender" in refused.value.smtp_error


def test_envelope_sender_other_than_the_login_is_refused_by_postfix(relay, armored):
    alice, carol = account(relay), account(relay)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        submit(relay, alice, carol, [alice], eml("encrypted", carol, alice, armored))
    ((code, text),) = refused.value.recipients.values()
    assert code == 553 and b"not owned by user" in text


def test_reinject_down_is_4xx_then_delivered_once_it_is_back(relay, armored):
    alice, bob = account(relay), account(relay)
    message = eml("encrypted", alice, bob, armored)
    master = relay.mail.etc / "master.cf"
    saved = master.read_text()
    port = relay.mail.filter_ports[10025]
    try:
        relay.mail.postconf("-M#", f"127.0.0.1:{port}/inet")
        relay.mail.postfix("reload")
        kill_reinject_smtpd(relay, port)  # the filter's pooled connection goes with it
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            submit(relay, alice, alice, [bob], message)
        assert deferred.value.smtp_code == 451
    finally:
        master.write_text(saved)
        relay.mail.postfix("reload")
    relay.wait_port(port, "reinject service")
    assert submit(relay, alice, alice, [bob], message) == {}
    (delivered,) = inbox(relay, bob)
    assert delivered.endswith(message)


def kill_reinject_smtpd(relay, port):
    """SIGTERM the smtpd processes our Postfix instance runs for the reinject port."""
    master_pid = int((relay.mail.spool / "pid/master.pid").read_text().split()[0])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == master_pid and f"127.0.0.1:{port}".encode() in cmdline:
            os.kill(int(entry.name), 15)


# --- port 25: other relay -> incoming filter (DKIM) -> LMTP -----------------


@pytest.fixture(scope="module")
def sender_domain(relay, tmp_path_factory):
    """example.net's DKIM key, published in the relay's DNS."""
    key, record = make_dkim_key(tmp_path_factory.mktemp("sender-dkim"), "rsa", "s1")
    relay.mail.publish({"s1._domainkey.sender.example": record.decode(),
                        "s1._domainkey.servfail.example": "SERVFAIL"})
    return DkimSigner.from_config("sender.example", DkimSign("s1", str(key))), key


def test_port_25_mail_with_aligned_dkim_is_delivered(relay, sender_domain, armored):
    signer, _ = sender_domain
    bob = account(relay)
    message = eml("encrypted", "carol@sender.example", bob, armored)
    signed = dkim_signed(signer, message)
    assert send_port25(relay, "carol@sender.example", [bob], signed) == {}
    (delivered,) = inbox(relay, bob)
    # verified by filtermail, then dropped before delivery with the trace fields
    assert delivered.endswith(message) and b"DKIM-Signature:" not in delivered


@pytest.mark.parametrize("sign", ["unsigned", "tampered"])
def test_port_25_mail_without_valid_dkim_is_refused_554(relay, sender_domain, armored, sign):
    signer, _ = sender_domain
    bob = account(relay)
    message = eml("encrypted", "carol@sender.example", bob, armored)
    if sign == "tampered":
        message = dkim_signed(signer, message, b"Version: 1", b"Version: 1 ")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send_port25(relay, "carol@sender.example", [bob], message)
    assert (refused.value.smtp_code, refused.value.smtp_error) == (
        554, b"5.7.1 No valid DKIM signature found")


def test_port_25_dns_failure_is_451(relay, sender_domain, armored):
    _, key = sender_domain
    bob = account(relay)
    signer = DkimSigner.from_config("servfail.example", DkimSign("s1", str(key)))
    message = eml("encrypted", "carol@servfail.example", bob, armored)
    with pytest.raises(smtplib.SMTPDataError) as deferred:
        send_port25(relay, "carol@servfail.example", [bob], dkim_signed(signer, message))
    assert deferred.value.smtp_code == 451


def test_port_25_cleartext_to_an_account_enforcing_e2ee_is_refused(relay, sender_domain,
                                                                   armored):
    signer, _ = sender_domain
    bob = account(relay)
    message = eml("plain", "carol@sender.example", bob, armored)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send_port25(relay, "carol@sender.example", [bob], dkim_signed(signer, message))
    assert refused.value.smtp_code == 523


# --- after-queue: content_filter; refusals become bounces -------------------


def test_after_queue_refusal_bounces_to_the_sender(after_queue_relay, armored):
    relay = after_queue_relay
    alice = account(relay)
    message = eml("plain", alice, "bob@example.net", armored)
    assert submit(relay, alice, alice, ["bob@example.net"], message) == {}  # queued
    (bounce,) = inbox(relay, alice)
    parsed = email.message_from_bytes(bounce)
    assert parsed.get_content_type() == "multipart/report"
    assert "<MAILER-DAEMON@" in parsed["From"]
    assert b"523 Encryption Needed: Invalid Unencrypted Mail" in bounce


def test_after_queue_encrypted_mail_is_delivered(after_queue_relay, armored):
    relay = after_queue_relay
    alice, bob = account(relay), account(relay)
    message = eml("encrypted", alice, bob, armored)
    assert submit(relay, alice, alice, [bob], message) == {}
    (delivered,) = inbox(relay, bob)
    assert delivered.endswith(message)


def test_port_25_recipient_too_long_for_a_mailbox_is_refused_for_good(relay, sender_domain,
                                                                      armored):
    signer, _ = sender_domain
    long_rcpt = "a" * 300 + "@" + relay.mail_domain
    message = eml("encrypted", "carol@sender.example", long_rcpt, armored)
    # Postfix passes the filter's RCPT reply on at RCPT, or at the end of DATA when
    # it hands the filter the whole envelope then (smtpd_proxy_options = speed_adjust)
    try:
        send_port25(relay, "carol@sender.example", [long_rcpt], dkim_signed(signer, message))
    except smtplib.SMTPRecipientsRefused as refused:
        ((code, text),) = refused.recipients.values()
    except smtplib.SMTPDataError as refused:
        code, text = refused.smtp_code, refused.smtp_error
    else:
        pytest.fail("accepted")
    assert (code, text) == (550, b"5.1.1 Recipient address rejected: too long for a mailbox name")
    log = (relay.base / "filtermail-incoming.log").read_text()
    assert "Traceback" not in log and "critical" not in log
