"""One expiry pass over generated mailbox trees with known ages, on the files
store and on Redis: the accounts come from the store, the mail from
`<mailboxes_dir>/<addr>`."""

import os
import shutil
import subprocess

import pytest

from chatmail_services.expire.run import Expiry

from .conftest import DAY, NOW


@pytest.fixture
def tree(any_tree):
    return any_tree


def run(tree, remove=True, lines=None):
    return Expiry(tree.config, tree.store.accounts, NOW, remove,
                  verbose=lines.append if lines is not None else None).run()


def test_inactive_account_goes_with_mail_tokens_and_queued_notifications(tree):
    addr, push = "inactive1@chat.example.org", tree.store.push
    gone = tree.account(addr, login_days_ago=91)
    tree.message(addr, days_ago=1)
    push.add_token(addr, "tok", NOW, 90 * DAY, 16)
    push.enqueue_push(addr, ["tok"], NOW, NOW + 100)
    kept = tree.account("activeone@chat.example.org", login_days_ago=89)
    tally = run(tree)
    assert not gone.exists() and tree.store.accounts.get_password(addr) is None
    assert push.get_tokens(addr, NOW, 90 * DAY) == []
    assert list(push.iter_pending_notifications()) == []
    assert list(tree.store.accounts.iter_accounts()) == [kept.name]
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


def test_directory_without_an_account_is_reported_and_left_untouched(tree):
    tree.account("abcdefghi@chat.example.org")
    orphan = tree.root / "orphaned1@chat.example.org"  # files: no password file
    old = tree.message(orphan.name, days_ago=30)
    lines = []
    tally = run(tree, lines=lines)
    assert orphan.exists() and old.exists()
    assert tally.problems["not_account"] == 1 and tally.not_accounts == 1
    assert tally.accounts == 1 and sum(tally.deleted_messages.values()) == 0
    assert any(str(orphan) in line for line in lines)


def test_foreign_or_odd_names_are_not_accounts_and_not_deleted(tree):
    odd = tree.root / "someone@other.org"
    odd.mkdir(parents=True)
    (odd / "password").write_text("x")
    os.utime(odd / "password", (0, 0))
    tally = run(tree)
    assert odd.exists() and tally.problems["not_account"] == 1


def test_an_account_without_a_home_has_no_mail_and_no_problem(tree):
    addr = "abcdefghi@chat.example.org"
    home = tree.account(addr)
    tree.message(addr, days_ago=1)
    expiry = Expiry(tree.config, tree.store.accounts, NOW, True)
    real = expiry.accounts.get_last_login

    def home_gone_after_lookup(addr):  # deleted meanwhile, or no mail on this host yet
        result = real(addr)
        shutil.rmtree(home)
        return result

    expiry.accounts.get_last_login = home_gone_after_lookup
    tally = expiry.run()
    assert tally.accounts == 1 and not tally.problems


def test_a_mailbox_vanishing_before_a_quota_trim_is_reported(tree):
    expiry = Expiry(tree.config, tree.store.accounts, NOW, True)
    expiry.expire_mailbox(str(tree.root / "vanished1@chat.example.org"))
    assert expiry.tally.problems["vanished"] == 1


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
