"""chatmailctl end to end: real files, real console script, exit codes scripts rely on."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chatmail_services.core.days import day_of
from chatmail_services.core.store.files import open_files
from chatmail_services.ctl.main import run

NOW = 1_700_000_000
DAY = 86400
DOMAIN = "chat.example.org"
BIN = Path(sys.executable).parent


@pytest.fixture
def relay(tmp_path):
    """A config file and a files store with two accounts, one inactive for 100 days."""
    mail = tmp_path / "mail"
    config = tmp_path / "chatmail.yaml"
    config.write_text(yaml.safe_dump({
        "mail_domain": DOMAIN, "mailboxes_dir": str(mail),
        "doveauth": {"nocreate_file": str(tmp_path / "nocreate")}}))
    store = open_files(mail, DOMAIN)
    for addr, days in (("activeone@" + DOMAIN, 2), ("inactive1@" + DOMAIN, 100)):
        store.accounts.create_account(addr, "{SHA512-CRYPT}$6$s$h", NOW)
        store.accounts.set_last_login(addr, day_of(NOW - days * DAY))
    (mail / ("activeone@" + DOMAIN) / "cur").mkdir()
    (mail / ("activeone@" + DOMAIN) / "cur" / "1.host:2,").write_bytes(b"x" * 1234)
    queue = mail / "pending_notifications"
    queue.mkdir()
    (queue / ("a" * 32)).write_text(f"inactive1@{DOMAIN}\n{NOW - 7200}\nsecret-device-token")
    (queue / ("b" * 32)).write_text(f"activeone@{DOMAIN}\n{NOW - 60}\nsecret-device-token")
    return tmp_path, str(config)


def ctl(config, *argv):
    out, err = io.StringIO(), io.StringIO()
    status = run(["--config", config, *argv], out, err, now=NOW)
    return status, out.getvalue(), err.getvalue()


def test_config_check_says_ok_and_exit_0(relay):
    status, out, _ = ctl(relay[1], "config", "check")
    assert status == 0
    assert out.splitlines()[0] == f"{relay[1]}: ok" and "registration: open" in out


def test_config_check_of_a_bad_file_exits_2_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mail_domain: chat.example.org\nexpire: {delete_mails_after: x}\n")
    status, out, err = ctl(str(bad), "config", "check")
    assert status == 2 and out == ""
    assert "expire.delete_mails_after: expected a whole number" in err


def test_accounts_list_plain_long_and_inactive(relay):
    _, out, _ = ctl(relay[1], "accounts", "list")
    assert sorted(out.split()) == [f"activeone@{DOMAIN}", f"inactive1@{DOMAIN}"]
    _, out, _ = ctl(relay[1], "accounts", "list", "--inactive-days", "90", "--long")
    assert out == f"inactive1@{DOMAIN}\t2023-08-06\n"


def test_accounts_show_gives_details_but_never_tokens(relay):
    status, out, _ = ctl(relay[1], "accounts", "show", f"activeone@{DOMAIN}")
    assert status == 0
    assert "last_login: 2023-11-12 (2d ago)" in out
    assert "messages: 1 (1234 bytes)" in out and "pending_notifications: 1" in out
    assert "incoming_cleartext: refused" in out and "secret" not in out


@pytest.mark.parametrize("addr,status", [(f"nobodyhere@{DOMAIN}", 1), ("../../etc", 2),
                                         ("someone@other.org", 2)])
def test_accounts_show_unknown_or_bad_address(relay, addr, status):
    code, out, err = ctl(relay[1], "accounts", "show", addr)
    assert (code, out) == (status, "") and err.startswith("chatmailctl: ")


def test_accounts_delete_removes_home_and_queue_items(relay):
    tmp_path, config = relay
    status, out, err = ctl(config, "accounts", "delete", f"inactive1@{DOMAIN}",
                           f"nobodyhere@{DOMAIN}")
    assert status == 1  # one of them did not exist
    assert out == f"deleted inactive1@{DOMAIN}\n" and "no such account" in err
    assert not (tmp_path / "mail" / f"inactive1@{DOMAIN}").exists()
    assert not (tmp_path / "mail" / "pending_notifications" / ("a" * 32)).exists()
    assert (tmp_path / "mail" / "pending_notifications" / ("b" * 32)).exists()


def test_registration_block_unblock_status(relay):
    tmp_path, config = relay
    assert ctl(config, "registration", "block") == (0, "registration: closed\n", "")
    assert ctl(config, "registration", "block")[0] == 0  # idempotent
    assert ctl(config, "registration", "status")[1] == "registration: closed\n"
    assert ctl(config, "registration", "unblock") == (0, "registration: open\n", "")


def test_queue_show_lists_oldest_first_without_tokens(relay):
    status, out, _ = ctl(relay[1], "queue", "show")
    assert status == 0 and "secret" not in out
    assert out.splitlines() == [
        "2 pending notifications, oldest queued 2h ago",
        f"{'a' * 32}\t2h\tinactive1@{DOMAIN}",
        f"{'b' * 32}\t1m\tactiveone@{DOMAIN}",
    ]


def test_queue_show_of_an_empty_relay(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"mail_domain: {DOMAIN}\nmailboxes_dir: {tmp_path}/none\n")
    assert ctl(str(config), "queue", "show") == (0, "0 pending notifications\n", "")


def test_unwritable_registration_state_exits_3(tmp_path):
    config = tmp_path / "c.yaml"
    (tmp_path / "not-a-dir").write_text("")
    config.write_text(f"mail_domain: {DOMAIN}\nmailboxes_dir: {tmp_path}/not-a-dir\n")
    status, _, err = ctl(str(config), "registration", "block")
    assert status == 3 and "registration" in err


def test_console_script_end_to_end(relay):
    tmp_path, config = relay

    def sh(*argv):
        return subprocess.run([BIN / "chatmailctl", "--config", config, *argv],
                              capture_output=True, text=True, timeout=60)

    assert sh("config", "check").returncode == 0
    assert sh("accounts", "delete", f"activeone@{DOMAIN}").returncode == 0
    shown = sh("accounts", "show", f"activeone@{DOMAIN}")
    assert shown.returncode == 1 and "no such account" in shown.stderr
    assert sh("accounts", "list").stdout == f"inactive1@{DOMAIN}\n"
    usage = sh("accounts", "frobnicate")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
    assert os.listdir(tmp_path / "mail" / "pending_notifications") == ["a" * 32]


def test_a_reader_that_left_ends_the_tool_quietly_as_sigpipe_would(relay):
    _, config = relay
    read, write = os.pipe()
    os.close(read)  # `chatmailctl ... | head` after head has exited
    try:
        proc = subprocess.run([BIN / "chatmailctl", "--config", config, "accounts", "list"],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (128 + 13, "")  # 13: SIGPIPE
