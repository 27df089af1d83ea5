"""doveauth and lastlogin behind Debian's real Dovecot, driven with imaplib and doveadm."""

import imaplib
import os
import threading
import time

import pytest

from chatmail_services.core.days import day_of

from .conftest import imap_login, login_ok, wait_until

PASSWORD = "a-long-secret"


def account_dir(relay, addr):
    return relay.mailboxes / addr


def test_first_login_creates_the_account(relay, new_addr):
    addr = new_addr()
    conn = imap_login(relay, addr, PASSWORD)
    typ, _ = conn.select("INBOX")
    assert typ == "OK"
    conn.logout()
    home = account_dir(relay, addr)
    assert (home / "password").read_text().startswith("{SHA512-CRYPT}$6$")
    assert (home / "enforceE2EEincoming").exists()
    assert (home / "cur").is_dir()  # Dovecot made its maildir in our home


def test_second_login_with_another_password_fails_and_right_one_works(relay, new_addr):
    addr = new_addr()
    assert login_ok(relay, addr, PASSWORD)
    before = (account_dir(relay, addr) / "password").read_bytes()
    assert not login_ok(relay, addr, "another-password")
    assert (account_dir(relay, addr) / "password").read_bytes() == before
    assert login_ok(relay, addr, PASSWORD)


@pytest.mark.parametrize("addr,password", [
    ("short@chat.example.org", PASSWORD),
    ("abcdefghij@chat.example.org", PASSWORD),
    ("abc_def!x@chat.example.org", PASSWORD),
    ("abcdefghi@elsewhere.org", PASSWORD),
    ("abcdefghi@chat.example.org", "short"),
])
def test_admission_refusals_refuse_login(relay, addr, password):
    assert not login_ok(relay, addr, password)
    assert not os.path.exists(account_dir(relay, addr.lower()))


def test_switch_file_blocks_new_accounts_but_not_existing_ones(relay, new_addr):
    existing = new_addr()
    assert login_ok(relay, existing, PASSWORD)
    relay.nocreate.touch()
    fresh = new_addr()
    assert not login_ok(relay, fresh, PASSWORD)
    assert not account_dir(relay, fresh).exists()
    assert login_ok(relay, existing, PASSWORD)
    relay.nocreate.unlink()
    assert login_ok(relay, fresh, PASSWORD)


@pytest.mark.parametrize("overrides", [
    {"doveauth": {"min_available_memory": "64T"}},
    {"doveauth": {"min_free_disk_space": "1024T"}},
])
def test_resource_shortage_blocks_new_accounts_only(relay, new_addr, overrides):
    # (high load is covered by the unit tests: the load average of a shared
    # test machine cannot be set from here)
    existing = new_addr()
    assert login_ok(relay, existing, PASSWORD)
    relay.restart_daemon("doveauth", **overrides)
    fresh = new_addr()
    assert not login_ok(relay, fresh, PASSWORD)
    assert not account_dir(relay, fresh).exists()
    assert login_ok(relay, existing, PASSWORD)


def test_login_updates_the_last_login_day(relay, new_addr):
    addr = new_addr()
    assert login_ok(relay, addr, PASSWORD)
    password = account_dir(relay, addr) / "password"
    long_ago = day_of(1_600_000_000)
    os.utime(password, (long_ago, long_ago))
    imap_login(relay, addr, PASSWORD).logout()
    # Dovecot's last_login plugin writes asynchronously, after LOGIN's OK:
    # wait for the day to change (bounded), then check it is today's.
    deadline = time.monotonic() + 20
    while int(password.stat().st_mtime) == long_ago and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int(password.stat().st_mtime) == day_of(time.time())


def test_doveadm_user_lists_accounts(relay, new_addr):
    addrs = sorted(new_addr() for _ in range(3))
    for addr in addrs:
        assert login_ok(relay, addr, PASSWORD)
    result = relay.doveadm("user", "*")
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == addrs


def test_concurrent_first_logins_with_different_passwords_have_one_winner(relay, new_addr):
    addr = new_addr()
    results, barrier = {}, threading.Barrier(20)

    def attempt(i):
        barrier.wait()
        results[i] = login_ok(relay, addr, f"password-number-{i}")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, ok in results.items() if ok]
    assert len(winners) == 1
    assert login_ok(relay, addr, f"password-number-{winners[0]}")


@pytest.mark.parametrize("password", [b"not-utf8-\xff\xfe-secret", b"latin1-caf\xe9-secret"])
def test_a_first_login_with_a_non_utf8_password_fails_cleanly(relay, new_addr, password):
    addr = new_addr()
    conn = imaplib.IMAP4("127.0.0.1", relay.imap_port, timeout=30)
    try:
        # imaplib sends a literal as it is: the 8-bit password reaches Dovecot
        conn.literal = password
        typ, data = conn._simple_command("LOGIN", addr)
        assert (typ, data) == ("NO", [b"[AUTHENTICATIONFAILED] Authentication failed."])
    finally:
        conn.shutdown()
    assert not account_dir(relay, addr).exists()
    log = (relay.base / "doveauth.log").read_text()
    assert "Traceback" not in log and "critical" not in log and "handler failed" not in log
    assert "login refused: password_chars" in log
    assert login_ok(relay, addr, PASSWORD)  # the address is free for a good first login


def test_doveauth_down_is_a_temporary_failure_then_dovecot_recovers(relay, new_addr):
    existing, fresh = new_addr(), new_addr()
    assert login_ok(relay, existing, PASSWORD)
    proc = relay.procs.pop("doveauth")
    proc.terminate()
    proc.wait(timeout=10)
    for addr in (existing, fresh):
        with pytest.raises(imaplib.IMAP4.error) as refused:
            imap_login(relay, addr, PASSWORD)
        assert "[UNAVAILABLE]" in str(refused.value)  # never AUTHENTICATIONFAILED
    assert not account_dir(relay, fresh).exists()
    relay.start_daemon("doveauth")  # Dovecot keeps running
    # Dovecot's dict client tries to connect at most once per second: a login
    # in the second of the last failed try is refused without a try.
    assert wait_until(lambda: login_ok(relay, existing, PASSWORD), timeout=10)
    assert login_ok(relay, fresh, PASSWORD)
