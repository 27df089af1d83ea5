"""chatmail-relayd, the one-process host, behind Debian's real Dovecot and Postfix:
the same flows as the separate daemons' tests (login and creation, last
login, a push on delivery, both filters), against one process."""

import os
import shutil
import smtplib
import tempfile
import time
from pathlib import Path

import pytest

from chatmail_services.core.days import day_of
from local_relay import free_port
from notify_sink import NotifySink, make_test_ca

from .conftest import imap_login, login_ok
from .test_filtermail_postfix import (
    PASSWORD, account, eml, inbox, make_armored, send_port25, start_relay, submit,
)
from .test_metadata import set_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sink():
    ca_dir = Path(tempfile.mkdtemp(prefix="chatmail-sink-", dir="/tmp"))
    ca_dir.chmod(0o755)  # relayd (user vmail) reads ca.pem
    for f in make_test_ca(ca_dir):
        f.chmod(0o644)
    s = NotifySink(free_port(), ca_dir).start()
    yield s
    s.stop()
    shutil.rmtree(ca_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def relay(sink):
    relay = start_relay("before", one_process=True, overrides={"metadata": {
        "notify_url": sink.url, "notify_ca_file": str(sink.ca_file)}})
    yield relay
    relay.stop()
    shutil.rmtree(relay.base, ignore_errors=True)


@pytest.fixture(scope="module")
def armored():
    return make_armored()


def test_one_process_serves_every_daemon(relay):
    assert set(relay.procs) >= {"relayd"}
    assert not {"doveauth", "lastlogin", "metadata", "filtermail-outgoing",
                "filtermail-incoming"} & set(relay.procs)


def test_first_login_creates_and_a_wrong_password_fails(relay):
    addr = account(relay)
    assert (relay.mailboxes / addr / "password").read_text().startswith("{SHA512-CRYPT}$6$")
    assert not login_ok(relay, addr, PASSWORD + "x")
    assert login_ok(relay, addr, PASSWORD)


def test_a_login_records_the_day(relay):
    addr = account(relay)
    password = relay.mailboxes / addr / "password"
    long_ago = day_of(1_600_000_000)
    os.utime(password, (long_ago, long_ago))
    imap_login(relay, addr, PASSWORD).logout()
    deadline = time.monotonic() + 20  # the plugin writes after LOGIN's OK
    while int(password.stat().st_mtime) == long_ago and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int(password.stat().st_mtime) == day_of(time.time())


def test_submitted_mail_passes_the_outgoing_filter_and_its_delivery_is_pushed(
        relay, sink, armored):
    alice, bob = account(relay), account(relay)
    set_token(relay, bob, "bobs-phone")
    message = eml("encrypted", alice, bob, armored)
    assert submit(relay, alice, alice, [bob], message) == {}
    (delivered,) = inbox(relay, bob)
    assert delivered.endswith(message)
    sink.wait_for(lambda posts: any(p.token == "bobs-phone" for p in posts))


def test_the_outgoing_filter_refuses_cleartext(relay, armored):
    alice = account(relay)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        submit(relay, alice, alice, ["bob@example.net"],
               eml("plain", alice, "bob@example.net", armored))
    assert refused.value.smtp_code == 523


def test_the_incoming_filter_refuses_mail_without_dkim(relay, armored):
    bob = account(relay)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send_port25(relay, "carol@sender.example", [bob],
                    eml("encrypted", "carol@sender.example", bob, armored))
    assert (refused.value.smtp_code, refused.value.smtp_error) == (
        554, b"5.7.1 No valid DKIM signature found")
