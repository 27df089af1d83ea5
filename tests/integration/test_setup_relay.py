"""Debian's Dovecot and Postfix run from a stock tree that `chatmailctl setup` wired.

The relay is scripts/local_relay.py: stock Debian 12 /etc from the packages,
`chatmailctl setup --root`, only loopback ports and paths changed. Checks
what issue 15 found missing on an operator's install: capabilities, the PAM
detour, hundreds of TLS and IDLE sessions, gzip mail of a reference relay,
quota and its warning (DKIM signing by default: test_privacy.py).
"""

import gzip
import imaplib
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from chatmail_services.core.config import load_config
from chatmail_services.core.store import open_store
from imap_sessions import client_context, make_accounts, open_sessions
from local_relay import LocalRelay, dovecot_version

from .conftest import imap_login

pytestmark = pytest.mark.integration
PASSWORD = "a-long-secret"
# No IDLE poll within any test's time: a session that sees new mail was woken by inotify.
NO_POLLING = "mailbox_idle_check_interval = 1h\nauth_verbose = yes\n"
# Which passdb answered, in the log: 2.3's auth_verbose names it (`dict(user,...)`);
# 2.4 logs nothing for an unknown user unless auth_debug is on (`lua: Performing
# passdb lookup`). auth_debug_passwords stays off.
if dovecot_version() >= (2, 4):
    NO_POLLING += "auth_debug = yes\n"
    PASSDB_SEEN, OTHER_PASSDBS = r"auth\({user},[^)]*\)<[^>]*>: Debug: lua: ", (
        ": pam: ", ": passwd: ", ": shadow: ")
else:
    PASSDB_SEEN, OTHER_PASSDBS = r"dict\({user},", ("pam(", "passwd(", "shadow(")


def start(**kwargs):
    base = Path(tempfile.mkdtemp(prefix="chatmail-setup-it-", dir="/tmp"))
    relay = LocalRelay(base, **kwargs)
    try:
        return relay.start()
    except RuntimeError:
        relay.stop()
        raise


@pytest.fixture(scope="module")
def relay():
    relay = start(postfix="before", dovecot_extra=NO_POLLING)
    yield relay
    relay.stop()
    shutil.rmtree(relay.base, ignore_errors=True)


@pytest.fixture(scope="module")
def quota_relay():
    relay = start(overrides={"max_mailbox_size": "100K"})
    yield relay
    relay.stop()
    shutil.rmtree(relay.base, ignore_errors=True)


@pytest.fixture(scope="module")
def accounts(relay):
    store = open_store(load_config(relay.config_path))
    try:
        return make_accounts(store, relay.mailboxes, 300, PASSWORD)
    finally:
        store.close()


@pytest.fixture(scope="module")
def inotify_limits(relay):
    relay.apply_sysctl()


def dovecot_log(relay) -> str:
    return relay.dovecot_log.read_text(errors="replace")


def test_capability_after_login_has_xdeltapush_and_xchatmail(relay, new_addr):
    conn = imap_login(relay, new_addr(), PASSWORD)
    try:
        typ, data = conn.capability()
    finally:
        conn.logout()
    caps = set(b" ".join(data).split())
    assert typ == "OK" and {b"XDELTAPUSH", b"XCHATMAIL", b"METADATA", b"QUOTA"} <= caps


@pytest.fixture
def system_account():
    # Always 11 characters: a local part our admission rules refuse (9 at
    # most), so that its @domain form cannot be a legitimate new account.
    # Without the padding, a PID of three digits (a fresh machine) made a
    # 9-character name, and that login created an account as it should.
    name = f"chmpam{os.getpid() % 100000:05d}"
    subprocess.run(["userdel", name], capture_output=True)  # left by an interrupted run
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    subprocess.run(["chpasswd"], input=f"{name}:{PASSWORD}", text=True, check=True)
    yield name
    subprocess.run(["userdel", name], check=True, capture_output=True)


def test_a_system_account_cannot_log_in_and_no_login_goes_through_pam(
        relay, system_account, new_addr):
    for user in (system_account, f"{system_account}@{relay.mail_domain}"):
        with pytest.raises(imaplib.IMAP4.error):
            imap_login(relay, user, PASSWORD)
        with smtplib.SMTP("127.0.0.1", relay.mail.ports["submission"], timeout=60) as client:
            client.starttls(context=client_context())
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login(user, PASSWORD)
    imap_login(relay, new_addr(), PASSWORD).logout()
    log = dovecot_log(relay)
    assert re.search(PASSDB_SEEN.format(user=re.escape(system_account)), log)
    assert not any(other in log for other in OTHER_PASSDBS)


def test_300_concurrent_tls_sessions_stay_connected(relay, accounts):
    sessions = open_sessions(relay.imaps_port, accounts[:300], PASSWORD)
    try:
        assert all(s.login_answer[-1].split()[1] == b"OK" for s in sessions)
        assert all(s.ok("NOOP") for s in sessions)
    finally:
        for s in sessions:
            s.close()
    assert "reached" not in dovecot_log(relay)  # process_limit / client_limit warnings


def test_200_idle_sessions_each_get_new_mail_pushed(relay, accounts, inotify_limits):
    sessions = open_sessions(relay.imaps_port, accounts[:200], PASSWORD)
    try:
        for s in sessions:
            assert s.ok("SELECT INBOX")
            s.idle()
        with smtplib.LMTP("127.0.0.1", relay.lmtp_port) as lmtp:
            for addr in accounts[:200]:
                assert lmtp.sendmail("sender@example.net", [addr],
                                     b"Subject: hello\r\n\r\nnew mail\r\n") == {}
        for s in sessions:  # one hour of no polling: only inotify can wake them
            assert s.wait_for(b"EXISTS") == b"* 1 EXISTS"
    finally:
        for s in sessions:
            s.close()
    assert "Inotify instance limit" not in dovecot_log(relay)


def test_a_gzip_maildir_message_of_a_reference_relay_is_fetched_intact(relay, accounts):
    addr = accounts[-1]
    message = b"From: a@example.net\nTo: %s\nSubject: old\n\n%s\n" % (
        addr.encode(), b"line of an old message\n" * 200)
    crlf = message.replace(b"\n", b"\r\n")
    name = f"1700000000.M1P1.reference,S={len(message)},W={len(crlf)}:2,S"
    path = relay.mailboxes / addr / "cur" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(message))  # what zlib_save = gz leaves on disk
    vmail = pwd.getpwnam("vmail")
    for p in (path.parent.parent, path.parent, path):
        os.chown(p, vmail.pw_uid, vmail.pw_gid)
    conn = imap_login(relay, addr, PASSWORD)
    try:
        conn.select("INBOX")
        typ, data = conn.fetch(b"1", "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == crlf
    finally:
        conn.logout()


# --- quota (max_mailbox_size 100K, warning at 75 %) -------------------------

def big_message(addr: str, n: int, kib: int = 10) -> bytes:
    header = f"From: x@example.net\r\nTo: {addr}\r\nSubject: {n}\r\n\r\n".encode()
    return header + (b"y" * 78 + b"\r\n") * (kib * 1024 // 80)


def lmtp_deliver(relay, addr: str, message: bytes):
    with smtplib.LMTP("127.0.0.1", relay.lmtp_port) as lmtp:
        return lmtp.sendmail("x@example.net", [addr], message)


def test_append_beyond_the_quota_is_refused(quota_relay, new_addr):
    addr = new_addr()
    conn = imap_login(quota_relay, addr, PASSWORD)
    try:
        answers = [conn.append("INBOX", None, None, big_message(addr, n, 20))
                   for n in range(7)]
    finally:
        conn.logout()
    typ, data = answers[-1]
    assert typ == "NO" and b"OVERQUOTA" in data[0]
    assert [a[0] for a in answers[:4]] == ["OK"] * 4


def test_lmtp_beyond_the_quota_is_refused_552(quota_relay, new_addr):
    addr = new_addr()
    imap_login(quota_relay, addr, PASSWORD).logout()
    for n in range(4):
        assert lmtp_deliver(quota_relay, addr, big_message(addr, n, 20)) == {}
    with pytest.raises(smtplib.SMTPDataError) as refused:
        for n in range(4, 8):
            lmtp_deliver(quota_relay, addr, big_message(addr, n, 20))
    assert refused.value.smtp_code == 552 and b"Quota exceeded" in refused.value.smtp_error


def test_the_quota_warning_trims_old_mail_when_75_percent_is_crossed(quota_relay, new_addr):
    addr = new_addr()
    imap_login(quota_relay, addr, PASSWORD).logout()
    for n in range(5):  # 50 KiB of mail from two days ago
        assert lmtp_deliver(quota_relay, addr, big_message(addr, n)) == {}
    cur_new = [quota_relay.mailboxes / addr / d for d in ("new", "cur")]
    old = [p for d in cur_new for p in d.iterdir()]
    two_days_ago = time.time() - 2 * 86400
    for p in old:
        os.utime(p, (two_days_ago, two_days_ago))
    for n in range(5, 7):  # 70 KiB: below the warning level
        assert lmtp_deliver(quota_relay, addr, big_message(addr, n)) == {}
    assert lmtp_deliver(quota_relay, addr, big_message(addr, 7)) == {}  # 80 KiB: crossed
    recent = [p for d in cur_new for p in d.iterdir() if p not in old]
    deadline = time.monotonic() + 30
    while all(p.exists() for p in old) and time.monotonic() < deadline:
        time.sleep(0.2)
    # chatmail-expire, run by the warning, deleted old mail and kept the last 24 hours'
    assert any(not p.exists() for p in old)
    assert all(p.exists() for p in recent)
