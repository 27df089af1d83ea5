"""One expiry pass over generated mailbox trees with known ages."""

import os
import subprocess

from chatmail_services.expire.run import Expiry

from .conftest import NOW


def run(tree, remove=True, lines=None):
    return Expiry(tree.config, tree.store, NOW, remove,
                  verbose=lines.append if lines is not None else None).run()


def test_inactive_account_goes_with_mail_tokens_and_queued_notifications(tree):
    gone = tree.account("inactive1@chat.example.org", login_days_ago=91)
    tree.message("inactive1@chat.example.org", days_ago=1)
    (gone / "metadata.json").write_text('{"devicetoken": {"tok": 1}}')
    queue = tree.root / "pending_notifications"
    queue.mkdir()
    (queue / ("a" * 32)).write_text("inactive1@chat.example.org\n1\ntok")
    kept = tree.account("activeone@chat.example.org", login_days_ago=89)
    tally = run(tree)
    assert not gone.exists() and not (queue / ("a" * 32)).exists()
    assert kept.exists()
    assert (tally.accounts, tally.deleted_accounts) == (1, 1)


def test_old_and_large_messages_go_and_maildirsize_is_removed(tree):
    addr = "abcdefghi@chat.example.org"
    tree.account(addr)
    old = tree.message(addr, days_ago=21)
    large = tree.message(addr, days_ago=8, size=300_000, folder="new")
    in_folder = tree.message(addr, days_ago=30, folder=".DeltaChat/cur")
    fresh = tree.message(addr, days_ago=6, size=300_000)
    maildirsize = tree.maildirsize(addr)
    tally = run(tree)
    assert not old.exists() and not large.exists() and not in_folder.exists()
    assert fresh.exists() and not maildirsize.exists()
    assert dict(tally.deleted_messages) == {"old": 2, "large": 1}
    assert tally.deleted_bytes == 302_000


def test_untouched_mailbox_keeps_its_maildirsize(tree):
    addr = "abcdefghi@chat.example.org"
    tree.account(addr)
    tree.message(addr, days_ago=1)
    assert tree.maildirsize(addr).exists()
    run(tree)
    assert tree.maildirsize(addr).exists()


def test_mailbox_is_trimmed_to_70_percent_of_quota_sparing_the_last_day(tree):
    addr = "abcdefghi@chat.example.org"  # max_mailbox_size 1M: target 734003 bytes
    tree.account(addr)
    oldest = tree.message(addr, days_ago=5, size=300_000)
    middle = tree.message(addr, days_ago=3, size=300_000)
    recent = [tree.message(addr, days_ago=0.5, size=300_000) for _ in range(3)]
    tally = run(tree)
    assert not oldest.exists() and not middle.exists()
    assert all(p.exists() for p in recent)  # still over target: recent mail is never cut
    assert tally.deleted_messages["quota"] == 2


def test_dry_run_removes_nothing_but_tells(tree):
    tree.account("inactive1@chat.example.org", login_days_ago=100)
    tree.account("abcdefghi@chat.example.org")
    old = tree.message("abcdefghi@chat.example.org", days_ago=30)
    before = sorted(p for p in tree.root.rglob("*"))
    tally = run(tree, remove=False)
    assert sorted(p for p in tree.root.rglob("*")) == before and old.exists()
    assert tally.deleted_accounts == 1 and tally.deleted_messages["old"] == 1
    assert "would delete" in tally.summary()


def test_directory_without_password_is_reported_and_its_old_mail_expires(tree):
    tree.account("abcdefghi@chat.example.org")
    orphan = tree.root / "orphaned1@chat.example.org"
    old = tree.message(orphan.name, days_ago=30)
    lines = []
    tally = run(tree, lines=lines)
    assert orphan.exists() and not old.exists()
    assert tally.problems["not_account"] == 1 and tally.not_accounts == 1
    assert tally.accounts == 1
    assert any(str(orphan) in line for line in lines)


def test_foreign_or_odd_names_are_not_accounts_and_not_deleted(tree):
    odd = tree.root / "someone@other.org"
    odd.mkdir(parents=True)
    (odd / "password").write_text("x")
    os.utime(odd / "password", (0, 0))
    tally = run(tree)
    assert odd.exists() and tally.problems["not_account"] == 1


def test_mailbox_vanishing_mid_scan_is_reported(tree, monkeypatch):
    tree.account("abcdefghi@chat.example.org")
    tree.message("abcdefghi@chat.example.org", days_ago=1)
    expiry = Expiry(tree.config, tree.store, NOW, True)
    real = expiry.store.get_last_login

    def vanish_after_lookup(addr):  # another expiry or chatmailctl deleted it meanwhile
        result = real(addr)
        expiry.store.delete_account(addr)
        return result

    monkeypatch.setattr(expiry.store, "get_last_login", vanish_after_lookup)
    tally = expiry.run()
    assert tally.problems["vanished"] == 1


def make_undeletable(path):
    """Make unlink(path) fail with EPERM; returns the undo."""
    if os.geteuid() == 0:  # root ignores modes; the immutable flag stops root too
        subprocess.run(["chattr", "+i", str(path)], check=True)
        return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
    os.chmod(path.parent, 0o500)
    return lambda: os.chmod(path.parent, 0o755)


def test_file_without_permission_is_reported_not_fatal(tree):
    addr = "abcdefghi@chat.example.org"
    tree.account(addr)
    stuck = tree.message(addr, days_ago=30)
    other = tree.account("otherone1@chat.example.org")
    other_old = tree.message("otherone1@chat.example.org", days_ago=30)
    undo = make_undeletable(stuck)
    try:
        tally = run(tree)
    finally:
        undo()
    assert stuck.exists() and tally.problems["permission"] == 1
    assert not other_old.exists() and other.exists()
