"""`chatmailctl setup --root` on a fresh stock Debian tree: what it writes, twice, undone.

On Debian 12 (Dovecot 2.3) and, in the chroot of scripts/test-deb13, on
Debian 13 (Dovecot 2.4): the checks of `doveconf -n` follow the release.

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
from chatmail_services.ctl.setupcompose import dovecot_release

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
RELEASE = dovecot_release()[0]
# What `doveconf -n` shows of the issue 15 settings, in each release's syntax
# (default config: 500M quota, warning at 75 %, hibernation after 30 s).
EXPECTED = {
    "2.3": dict(drivers=["dict", "dict"], settings=(
        "imap_capability = +XDELTAPUSH XCHATMAIL", "protocols = imap lmtp",
        "imap_hibernate_timeout = 30 secs", "quota_rule = *:storage=512000K",
        "quota_warning = storage=75%% chatmail-quota-warning %u"),
        limits=("quota_rule = *:storage=102400K", "storage=60%%")),
    "2.4": dict(drivers=["lua", "prefetch", "lua"], settings=(
        "    XDELTAPUSH = yes\n    XCHATMAIL = yes", "protocols = imap lmtp",
        "imap_hibernate_timeout = 30s", "storage_size = 512000K",
        "quota_storage_percentage = 75\n    execute chatmail-quota-warning {\n"
        "      args = %{user}", "mail_compress = yes\n  quota = yes"),
        limits=("storage_size = 102400K", "quota_storage_percentage = 60")),
}[RELEASE]


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


def auth_drivers(conf):
    """The passdb/userdb drivers of `doveconf -n`, in order: 2.3 writes `passdb {`
    with `driver = X` inside, 2.4 names the section `passdb X {`."""
    found = []
    for block in re.finditer(r"^(?:passdb|userdb)( \S+)? \{\n(.*?)^\}", conf, re.M | re.S):
        driver = re.search(r"^\s*driver = (\S+)$", block[2], re.M)
        found.append(driver[1] if driver else block[1].strip())
    return found


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
    assert auth_drivers(conf) == EXPECTED["drivers"]  # no pam, no passwd
    auth = (tree / "etc/dovecot/conf.d/10-auth.conf").read_text()
    assert "\n#!include auth-system.conf.ext  # off: chatmailctl setup" in auth


def test_the_result_carries_the_issue_15_settings(tree):
    assert setup(tree).returncode == 0
    conf = doveconf(tree)
    for line in EXPECTED["settings"] + ("executable = script /usr/bin/chatmail-expire "
                                        "--config /etc/chatmail/chatmail.yaml --remove quota",):
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
    assert all(line in conf for line in EXPECTED["limits"])
    # 0, the default: never (2.3 leaves it out of -n, 2.4 shows `0s`)
    assert not re.search(r"^imap_hibernate_timeout = (?!0s?$)", conf, re.M)
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
    snippets = dovecot_release()[1].snippets
    with open(sources / f"conf/{snippets}/92-chatmail-server.conf", "a") as f:
        f.write("no_such_setting = 1\n")
    before = snapshot(tree)
    proc = subprocess.run([str(BIN / "chatmailctl"), "--config",
                           str(tree / "etc/chatmail/chatmail.yaml"), "setup",
                           "--root", str(tree), "--sources", str(sources)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3 and "doveconf -n refused" in proc.stderr
    assert snapshot(tree) == before
