"""`chatmailctl setup --root` on a fresh stock Debian 12 tree: what it writes, twice, undone.

The tree is built from the installed packages (scripts/stock_tree.py), not
copied from this host's /etc. The servers are not started here (see
test_setup_relay.py); doveconf and postconf read the result.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import stock_tree  # scripts/, put on sys.path by conftest

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree():
    root = Path(tempfile.mkdtemp(prefix="chatmail-tree-", dir="/tmp"))
    stock_tree.build(root, "mx.chat.example.org")
    (root / "etc/chatmail").mkdir()
    (root / "etc/chatmail/chatmail.yaml").write_text("mail_domain: chat.example.org\n")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def setup(root, *args):
    return subprocess.run([str(BIN / "chatmailctl"), "--config",
                           str(root / "etc/chatmail/chatmail.yaml"), "setup", "--root", str(root),
                           "--sources", str(REPO), *args],
                          capture_output=True, text=True, timeout=300)


def snapshot(root):
    """Every file and directory under etc/ except chatmail's own: bytes, mode, owner."""
    found = {}
    for path in sorted((root / "etc").rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[:2] == ("etc", "chatmail"):
            continue
        st = path.lstat()
        found[str(rel)] = (path.read_bytes() if path.is_file() else None,
                           st.st_mode, st.st_uid, st.st_gid)
    return found


def doveconf(root):
    return subprocess.run(["doveconf", "-n", "-c", str(root / "etc/dovecot/dovecot.conf")],
                          capture_output=True, text=True, check=True).stdout


def test_setup_twice_changes_nothing_and_undo_restores_the_stock_files(tree):
    stock = snapshot(tree)
    first = setup(tree)
    assert first.returncode == 0, first.stderr
    assert "changed: /etc/dovecot/conf.d/10-auth.conf" in first.stdout
    after_first = snapshot(tree)
    second = setup(tree)
    assert second.returncode == 0, second.stderr
    assert "nothing to change" in second.stdout and "changed:" not in second.stdout
    assert snapshot(tree) == after_first
    undo = setup(tree, "--undo")
    assert undo.returncode == 0, undo.stderr
    assert snapshot(tree) == stock
    assert setup(tree, "--undo").stdout.startswith("chatmailctl setup --undo: nothing to undo")


def test_the_result_has_doveauth_as_the_only_passdb_and_userdb(tree):
    assert setup(tree).returncode == 0
    conf = doveconf(tree)
    drivers = [line.split("=")[1].strip() for line in conf.splitlines()
               if line.strip().startswith("driver =")]
    assert drivers == ["dict", "dict"]  # no pam, no passwd
    auth = (tree / "etc/dovecot/conf.d/10-auth.conf").read_text()
    assert "\n#!include auth-system.conf.ext  # off: chatmailctl setup" in auth


def test_the_result_carries_the_issue_15_settings(tree):
    assert setup(tree).returncode == 0
    conf = doveconf(tree)
    for line in ("imap_capability = +XDELTAPUSH XCHATMAIL", "protocols = imap lmtp",
                 "imap_hibernate_timeout = 30 secs", "quota_rule = *:storage=512000K",
                 "quota_warning = storage=75%% chatmail-quota-warning %u",
                 "executable = script /usr/bin/chatmail-expire --config "
                 "/etc/chatmail/chatmail.yaml --remove quota"):
        assert line in conf
    main = subprocess.run(["postconf", "-c", str(tree / "etc/postfix"), "-h",
                           "smtpd_peername_lookup", "maximal_queue_lifetime",
                           "virtual_mailbox_domains", "message_size_limit"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert main == ["no", "2d", "chat.example.org", "31457280"]
    submission = subprocess.run(["postconf", "-c", str(tree / "etc/postfix"), "-M",
                                 "submission/inet"], capture_output=True, text=True).stdout
    assert " 200 " in submission and "smtpd_client_connection_count_limit=20" in submission
    journald = (tree / "etc/systemd/journald.conf.d/chatmail.conf").read_text()
    assert "Storage=volatile" in journald and "MaxRetentionSec=3d" in journald
    assert "Restart=on-failure" in (
        tree / "etc/systemd/system/dovecot.service.d/50-chatmail.conf").read_text()


def test_limits_come_from_the_config(tree):
    (tree / "etc/chatmail/chatmail.yaml").write_text(
        "mail_domain: chat.example.org\nmax_mailbox_size: 100M\n"
        "setup: {imap_max_connections: 300, imap_hibernate_after: 0, quota_warning_percent: 60,"
        " journal_retention: 12h}\n")
    assert setup(tree).returncode == 0
    conf = doveconf(tree)
    assert "quota_rule = *:storage=102400K" in conf and "storage=60%%" in conf
    assert "imap_hibernate_timeout" not in conf  # 0, the default: never
    assert "process_limit = 300" in conf
    assert "MaxRetentionSec=12h" in (tree / "etc/systemd/journald.conf.d/chatmail.conf").read_text()


def test_a_dkim_key_is_made_once_and_its_record_printed(tree):
    first = setup(tree)
    key = tree / "etc/chatmail/dkim/dkim.key"
    assert key.exists() and key.stat().st_mode & 0o777 == 0o600
    assert key.stat().st_uid == __import__("pwd").getpwnam("vmail").pw_uid
    assert re.search(r'^dkim\._domainkey\.chat\.example\.org\.\s+\d+ IN TXT\s+"v=DKIM1; k=rsa; p=',
                     first.stdout, re.M)
    before = key.read_bytes()
    second = setup(tree)
    assert key.read_bytes() == before and "made DKIM key" not in second.stdout
    assert first.stdout.split("DNS records")[1] == second.stdout.split("DNS records")[1]


def test_a_broken_stock_tree_is_refused_and_nothing_is_written(tree):
    os.unlink(tree / "etc/postfix/master.cf")
    before = snapshot(tree)
    proc = setup(tree)
    assert proc.returncode == 3 and "master.cf is missing" in proc.stderr
    assert snapshot(tree) == before


def test_a_snippet_dovecot_refuses_stops_setup_before_writing(tree, tmp_path):
    sources = tmp_path / "checkout"
    shutil.copytree(REPO / "conf", sources / "conf")
    shutil.copytree(REPO / "systemd", sources / "systemd")
    with open(sources / "conf/dovecot/92-chatmail-server.conf", "a") as f:
        f.write("no_such_setting = 1\n")
    before = snapshot(tree)
    proc = subprocess.run([str(BIN / "chatmailctl"), "--config",
                           str(tree / "etc/chatmail/chatmail.yaml"), "setup",
                           "--root", str(tree), "--sources", str(sources)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3 and "doveconf -n refused" in proc.stderr
    assert snapshot(tree) == before
