"""The files store: chatmail's on-disk layout, atomic creation, last login."""

import json
import os
import subprocess
import sys
import threading

import pytest

from chatmail_services.core.days import day_of
from chatmail_services.core.store import AccountDamaged
from chatmail_services.core.store.files import open_files

DOMAIN = "chat.example.org"
NOW = 1_700_000_123
HASH = "{SHA512-CRYPT}$6$salt$hash"


@pytest.fixture
def store(tmp_path):
    return open_files(tmp_path / "mail", DOMAIN)


def test_created_account_has_the_reference_layout(store, tmp_path):
    addr = "abcdefghi@" + DOMAIN
    assert store.accounts.create_account(addr, HASH, NOW) == HASH
    home = tmp_path / "mail" / addr
    assert (home / "password").read_bytes() == HASH.encode()  # no newline
    assert (home / "enforceE2EEincoming").exists()
    assert int((home / "password").stat().st_mtime) == day_of(NOW)
    assert sorted(p.name for p in home.iterdir()) == ["enforceE2EEincoming", "password"]


def test_existing_account_keeps_its_hash(store):
    addr = "abcdefghi@" + DOMAIN
    store.accounts.create_account(addr, HASH, NOW)
    assert store.accounts.create_account(addr, "{SHA512-CRYPT}other", NOW) == HASH
    assert store.accounts.get_password(addr) == HASH


def test_concurrent_creations_have_exactly_one_winner(store):
    addr = "racerace1@" + DOMAIN
    results, barrier = [], threading.Barrier(16)

    def create(i):
        barrier.wait()
        results.append(store.accounts.create_account(addr, f"{{SHA512-CRYPT}}h{i}", NOW))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 16
    assert store.accounts.get_password(addr) == results[0]


@pytest.mark.parametrize("content", [b"", b"\n", b"\xff\xfe", b"garbage"])
def test_empty_or_garbled_password_file_is_damage_not_absence(store, tmp_path, content):
    addr = "damaged01@" + DOMAIN
    (tmp_path / "mail" / addr).mkdir(parents=True)
    (tmp_path / "mail" / addr / "password").write_bytes(content)
    with pytest.raises(AccountDamaged):
        store.accounts.get_password(addr)
    with pytest.raises(AccountDamaged):
        store.accounts.create_account(addr, HASH, NOW)


def test_unreadable_password_file_is_damage(store, tmp_path):
    addr = "unreadabl@" + DOMAIN
    (tmp_path / "mail" / addr / "password").mkdir(parents=True)  # reading a dir fails
    with pytest.raises(AccountDamaged):
        store.accounts.get_password(addr)


def test_reference_relay_password_file_with_newline_is_read(store, tmp_path):
    addr = "oldrelay1@" + DOMAIN
    (tmp_path / "mail" / addr).mkdir(parents=True)
    (tmp_path / "mail" / addr / "password").write_bytes(HASH.encode() + b"\n")
    assert store.accounts.get_password(addr) == HASH


@pytest.mark.parametrize("size", [4095, 4096, 8192, 10000])
def test_password_file_is_read_whole_whatever_its_length(store, tmp_path, size):
    # the login path reads in 4 KiB chunks; lengths at and across their edges
    addr = "longfile1@" + DOMAIN
    (tmp_path / "mail" / addr).mkdir(parents=True)
    text = (HASH + "x" * size)[:size]
    (tmp_path / "mail" / addr / "password").write_bytes(text.encode() + b"\n")
    assert store.accounts.get_password(addr) == text


@pytest.mark.parametrize("addr", ["../etc@" + DOMAIN, "a/b@" + DOMAIN, "x@other.org",
                                  "nul\x00l@" + DOMAIN, ".hidden@" + DOMAIN, "noat"])
def test_unsafe_addresses_never_become_paths(store, addr):
    with pytest.raises(ValueError):
        store.accounts.get_password(addr)
    with pytest.raises(ValueError):
        store.accounts.create_account(addr, HASH, NOW)


def test_last_login_is_the_password_mtime_day(store, tmp_path):
    addr = "loginday1@" + DOMAIN
    store.accounts.create_account(addr, HASH, NOW)
    later = day_of(NOW) + 5 * 86400
    assert store.accounts.set_last_login(addr, later) is True
    assert store.accounts.get_last_login(addr) == later
    assert int(os.stat(tmp_path / "mail" / addr / "password").st_mtime) == later


def test_last_login_for_unknown_address_creates_nothing(store, tmp_path):
    assert store.accounts.set_last_login("nobody123@" + DOMAIN, day_of(NOW)) is False
    assert store.accounts.get_last_login("nobody123@" + DOMAIN) is None
    assert not (tmp_path / "mail").exists()


def test_iter_accounts_lists_only_accounts(store, tmp_path):
    for name in ("aaaaaaaaa", "bbbbbbbbb"):
        store.accounts.create_account(f"{name}@{DOMAIN}", HASH, NOW)
    (tmp_path / "mail" / "pending_notifications").mkdir()
    (tmp_path / "mail" / f"nopasswd1@{DOMAIN}").mkdir()
    assert sorted(store.accounts.iter_accounts()) == [f"aaaaaaaaa@{DOMAIN}", f"bbbbbbbbb@{DOMAIN}"]


def test_iter_accounts_of_missing_dir_is_empty(tmp_path):
    assert list(open_files(tmp_path / "absent", DOMAIN).accounts.iter_accounts()) == []


def test_new_account_enforces_e2ee_incoming(store):
    addr = "enforcee2@" + DOMAIN
    assert store.accounts.enforces_e2ee_incoming(addr) is False
    store.accounts.create_account(addr, HASH, NOW)
    assert store.accounts.enforces_e2ee_incoming(addr) is True


def test_no_temporary_files_are_left_behind(store, tmp_path):
    addr = "tempfiles@" + DOMAIN
    store.accounts.create_account(addr, HASH, NOW)
    store.accounts.create_account(addr, HASH, NOW)
    assert not [p for p in (tmp_path / "mail" / addr).iterdir() if p.name.startswith(".tmp")]


# -- push state in the reference layout -------------------------------------
MAX_AGE = 90 * 86400


def test_tokens_are_stored_in_the_reference_metadata_json(store, tmp_path):
    addr = "abcdefghi@" + DOMAIN
    store.accounts.create_account(addr, HASH, NOW)
    store.push.add_token(addr, "tok", NOW, MAX_AGE, 16)
    data = json.loads((tmp_path / "mail" / addr / "metadata.json").read_text())
    assert data == {"devicetoken": {"tok": NOW}}


def test_legacy_token_list_is_read_and_migrated_on_write(store, tmp_path):
    addr = "abcdefghi@" + DOMAIN
    store.accounts.create_account(addr, HASH, NOW)
    path = tmp_path / "mail" / addr / "metadata.json"
    path.write_text(json.dumps({"devicetoken": ["old1", "old2"], "other": 1}))
    assert sorted(store.push.get_tokens(addr, NOW, MAX_AGE)) == ["old1", "old2"]
    store.push.add_token(addr, "new", NOW + 1, MAX_AGE, 16)
    data = json.loads(path.read_text())
    assert data == {"devicetoken": {"old1": NOW + 1, "old2": NOW + 1, "new": NOW + 1},
                    "other": 1}


def test_reference_queue_items_are_taken_over(store, tmp_path):
    queue = tmp_path / "mail" / "pending_notifications"
    queue.mkdir(parents=True)
    (queue / ("ab" * 16)).write_text(f"abcdefghi@{DOMAIN}\n{NOW}\ntok en")
    (item,), _ = store.push.claim_push(NOW + 10, 10, 30)
    assert (item.addr, item.token, item.deadline) == (f"abcdefghi@{DOMAIN}", "tok en",
                                                      NOW + 5 * 3600)
    assert len(list(queue.iterdir())) == 1


def test_damaged_queue_items_and_stale_temp_files_are_removed(store, tmp_path):
    queue = tmp_path / "mail" / "pending_notifications"
    queue.mkdir(parents=True)
    (queue / f"{NOW * 1000:013d}.bad").write_text("{not json")
    stale = queue / ".tmp.1.abc"
    stale.write_text("x")
    os.utime(stale, (NOW - 7200, NOW - 7200))
    assert store.push.claim_push(NOW, 10, 30) == ([], None)
    assert list(queue.iterdir()) == []


def queue_item(tmp_path, name, addr, ts=NOW, token="tok"):
    queue = tmp_path / "mail" / "pending_notifications"
    queue.mkdir(parents=True, exist_ok=True)
    (queue / name).write_text(f"{addr}\n{ts}\n{token}")
    return queue / name


def test_delete_account_removes_home_tokens_and_its_queue_items(store, tmp_path):
    addr, other = "abcdefghi@" + DOMAIN, "otherone1@" + DOMAIN
    store.accounts.create_account(addr, HASH, NOW)
    store.accounts.create_account(other, HASH, NOW)
    home = tmp_path / "mail" / addr
    (home / "metadata.json").write_text('{"devicetoken": {"t": 1}}')
    (home / "cur").mkdir()
    (home / "cur" / "1.msg").write_text("mail")
    mine = queue_item(tmp_path, "a" * 32, addr)
    writing = queue_item(tmp_path, "b" * 32 + ".tmp", addr)
    theirs = queue_item(tmp_path, "c" * 32, other)
    assert store.accounts.delete_account(addr) is True
    assert not home.exists() and not mine.exists() and not writing.exists()
    assert theirs.exists() and store.accounts.get_password(other) == HASH
    assert sorted(p.name for p in (tmp_path / "mail").iterdir()) == [
        "otherone1@" + DOMAIN, "pending_notifications"]


def test_delete_unknown_account_is_false_and_creates_nothing(store, tmp_path):
    assert store.accounts.delete_account("abcdefghi@" + DOMAIN) is False
    assert not (tmp_path / "mail").exists()


def test_delete_accounts_counts_those_that_existed(store):
    addrs = [f"account{i:02d}@{DOMAIN}" for i in range(3)]
    for addr in addrs[:2]:
        store.accounts.create_account(addr, HASH, NOW)
    assert store.accounts.delete_accounts(addrs) == 2
    assert list(store.accounts.iter_accounts()) == []


@pytest.mark.parametrize("addr", ["../etc@" + DOMAIN, "x@other.org"])
def test_delete_refuses_unsafe_addresses(store, addr):
    with pytest.raises(ValueError):
        store.accounts.delete_account(addr)


def test_pending_notifications_list_address_and_time_never_the_token(store, tmp_path):
    queue_item(tmp_path, "a" * 32, "abcdefghi@" + DOMAIN, ts=NOW, token="secret-token")
    queue_item(tmp_path, "b" * 32 + ".tmp", "abcdefghi@" + DOMAIN)
    queue_item(tmp_path, "c" * 32, "garbled", ts="not-a-number")
    items = list(store.push.iter_pending_notifications())
    assert [(i.id, i.addr, i.queued_at) for i in items] == [("a" * 32, "abcdefghi@" + DOMAIN, NOW)]
    assert "secret-token" not in repr(items)


def test_deleting_an_account_removes_its_queued_pushes_in_our_format(store):
    gone, kept = "deleteme1@" + DOMAIN, "keepthis1@" + DOMAIN
    for addr in (gone, kept):
        store.accounts.create_account(addr, HASH, NOW)
        store.push.enqueue_push(addr, ["tok-1", "tok-2"], NOW, NOW + 5 * 3600)
    listed = sorted((i.addr, i.queued_at) for i in store.push.iter_pending_notifications())
    assert listed == [(gone, NOW), (gone, NOW), (kept, NOW), (kept, NOW)]
    assert store.accounts.delete_account(gone) is True
    claimed, _ = store.push.claim_push(NOW, 10, 30)
    assert sorted((i.addr, i.token) for i in claimed) == [(kept, "tok-1"), (kept, "tok-2")]
    assert all(i.queued_at == NOW for i in claimed)


def test_the_files_backend_never_imports_redis(make_config, tmp_path):
    script = ("import sys; from chatmail_services.core.config import load_config; "
              "from chatmail_services.core.store import open_store; "
              f"open_store(load_config({str(tmp_path / 'c.yaml')!r})).accounts.iter_accounts(); "
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis'))")
    (tmp_path / "c.yaml").write_text("mail_domain: chat.example.org\n"
                                     f"mailboxes_dir: {tmp_path / 'mail'}\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert out == "[]\n"
