"""`chatmail-expire` end to end: arguments, summary, textfile, quota, time zones."""

import io
import os
import subprocess
import sys
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from chatmail_services.expire.main import run

from .conftest import NOW

BIN = Path(sys.executable).parent


def write_config(tree, tmp_path, **expire):
    path = tmp_path / "chatmail.yaml"
    path.write_text(yaml.safe_dump({
        "mail_domain": tree.config.mail_domain, "mailboxes_dir": tree.config.mailboxes_dir,
        "max_mailbox_size": "1M", "expire": expire}))
    return str(path)


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    status = run([str(a) for a in argv], out, err)
    return status, out.getvalue(), err.getvalue()


def test_dry_run_by_default_and_remove_on_request(tree, tmp_path):
    old = tree.message(tree.account("abcdefghi@chat.example.org").name, days_ago=30)
    config = write_config(tree, tmp_path)
    status, out, err = cli("--config", config, "--now", NOW)
    assert (status, err) == (0, "") and old.exists()
    assert "would delete 0 of 1 accounts and 1 of 1 messages" in out
    status, out, _ = cli("--config", config, "--now", NOW, "--remove")
    assert status == 0 and not old.exists()
    assert out.startswith("chatmail-expire: deleted 0 of 1 accounts and 1 of 1 messages")


def test_summary_names_no_account_but_verbose_does(tree, tmp_path):
    tree.account("inactive1@chat.example.org", login_days_ago=200)
    config = write_config(tree, tmp_path)
    _, out, err = cli("--config", config, "--now", NOW)
    assert "inactive1" not in out + err
    _, _, err = cli("--config", config, "--now", NOW, "--verbose")
    assert "would delete account inactive1@chat.example.org" in err


def metrics_of(path):
    found = {}
    for family in text_string_to_metric_families(Path(path).read_text()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_textfile_has_accounts_activity_and_bytes_by_size(tree, tmp_path):
    for i, days in enumerate((0, 3, 20, 60)):
        addr = f"account0{i}@chat.example.org"
        tree.account(addr, login_days_ago=days)
        tree.message(addr, days_ago=1, size=5000)
    tree.message("account00@chat.example.org", days_ago=2, size=150_000)
    tree.account("inactive1@chat.example.org", login_days_ago=100)
    textfile = tmp_path / "chatmail.prom"
    status, _, _ = cli("--config", write_config(tree, tmp_path, metrics_textfile=str(textfile)),
                       "--now", NOW, "--remove")
    m = metrics_of(textfile)
    assert status == 0
    assert m[("chatmail_accounts", ())] == 4
    assert [m[("chatmail_accounts_active", (("within_days", d),))]
            for d in ("1", "7", "30", "90")] == [1, 2, 3, 4]
    assert m[("chatmail_messages", (("size", "10k"),))] == 4
    assert m[("chatmail_message_bytes", (("size", "200k"),))] == 150_000
    assert m[("chatmail_storage_bytes", (("kind", "messages"),))] == 170_000
    assert m[("chatmail_expire_deleted_accounts", ())] == 1
    assert m[("chatmail_expire_dry_run", ())] == 0


def test_quota_trims_one_mailbox(tree, tmp_path):
    addr = "abcdefghi@chat.example.org"
    tree.account(addr)
    oldest = tree.message(addr, days_ago=4, size=400_000)
    newer = tree.message(addr, days_ago=2, size=400_000)
    other = tree.message(tree.account("otherone1@chat.example.org").name, days_ago=30)
    status, out, _ = cli("--config", write_config(tree, tmp_path), "--now", NOW,
                         "--remove", "quota", addr)
    assert status == 0 and "1 quota" in out
    assert not oldest.exists() and newer.exists() and other.exists()


def test_quota_refuses_a_path_instead_of_an_address(tree, tmp_path):
    status, _, err = cli("--config", write_config(tree, tmp_path), "quota", "../../etc@x")
    assert status == 2 and "quota:" in err


def test_bad_config_exits_2_naming_the_key(tree, tmp_path):
    status, _, err = cli("--config", write_config(tree, tmp_path, delete_mails_after=0))
    assert status == 2 and "expire.delete_mails_after: must be at least 1" in err


def test_unreadable_mailboxes_dir_exits_1(tree, tmp_path):
    status, _, err = cli("--config", write_config(tree, tmp_path))  # never created
    assert status == 1 and "cannot read" in err


def test_the_host_time_zone_changes_nothing(tree, tmp_path):
    addr = "abcdefghi@chat.example.org"
    tree.account(addr)
    tree.account("inactive1@chat.example.org", login_days_ago=90)  # on the boundary day
    for hours in (-13, -1, 1, 13):  # around the 20-day boundary
        tree.message(addr, days_ago=20 + hours / 24)
    config = write_config(tree, tmp_path)
    outputs = set()
    for tz in ("UTC", "Pacific/Kiritimati", "America/Adak", "Asia/Kathmandu"):
        proc = subprocess.run([BIN / "chatmail-expire", "--config", config, "--now", str(NOW),
                               "--verbose"], capture_output=True, text=True,
                              env={**os.environ, "TZ": tz}, check=True)
        outputs.add(proc.stdout.split(" in ")[0] + "".join(sorted(proc.stderr.splitlines())))
    assert len(outputs) == 1
    assert "would delete 1 of 2 accounts and 2 of 4 messages" in outputs.pop()
