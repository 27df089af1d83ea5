"""The Accounts role's contract, run over every backend: files and a real
redis-server (the `backend` and `store` fixtures are in conftest.py)."""

import os
import threading
import time

import pytest

from chatmail_services.core.days import day_of
from chatmail_services.core.store import AccountDamaged, open_store

# Recent, not fixed: Redis expires last-login records by its own clock.
NOW = time.time()
HASH = "{SHA512-CRYPT}$6$salt$hash"
DOMAIN = "chat.example.org"
ADDR = "abcdefghi@" + DOMAIN
OTHER = "otherone1@" + DOMAIN
MAX_AGE = 90 * 86400


def addr_of(localpart):
    return f"{localpart}@{DOMAIN}"


def add(store, token, addr=ADDR):
    return store.push.add_token(addr, token, NOW, MAX_AGE, 16)


def test_created_account_has_hash_flag_and_login_day(store):
    addr = addr_of("abcdefghi")
    assert store.accounts.create_account(addr, HASH, NOW) == HASH
    assert store.accounts.get_password(addr) == HASH
    assert store.accounts.enforces_e2ee_incoming(addr) is True
    assert store.accounts.get_last_login(addr) == day_of(NOW)


def test_unknown_account_is_none_everywhere(store):
    addr = addr_of("nobody123")
    assert store.accounts.get_password(addr) is None
    assert store.accounts.get_last_login(addr) is None
    assert store.accounts.enforces_e2ee_incoming(addr) is False


def test_existing_account_keeps_its_hash(store):
    addr = addr_of("abcdefghi")
    store.accounts.create_account(addr, HASH, NOW)
    assert store.accounts.create_account(addr, "{SHA512-CRYPT}other", NOW + 86400) == HASH
    assert store.accounts.get_password(addr) == HASH
    assert store.accounts.get_last_login(addr) == day_of(NOW)


def test_concurrent_creations_on_several_hosts_have_exactly_one_winner(backend):
    hosts = [backend.new() for _ in range(4)]
    addrs = [addr_of(f"racer{i:04d}") for i in range(10)]
    results, barrier = [], threading.Barrier(16)

    def create(i):
        barrier.wait()
        for addr in addrs:
            results.append((addr, hosts[i % 4].accounts.create_account(addr, f"{{X}}h{i}", NOW)))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16 * len(addrs)
    for addr in addrs:
        winners = {stored for a, stored in results if a == addr}
        assert len(winners) == 1
        assert hosts[0].accounts.get_password(addr) == winners.pop()
        assert hosts[1].accounts.enforces_e2ee_incoming(addr)


def test_damaged_account_is_damage_not_absence(backend, store):
    addr = addr_of("damaged01")
    backend.damage(addr)
    with pytest.raises(AccountDamaged):
        store.accounts.get_password(addr)
    with pytest.raises(AccountDamaged):
        store.accounts.create_account(addr, HASH, NOW)
    with pytest.raises(AccountDamaged):
        store.transfer.import_account(addr, HASH, day_of(NOW), True)


@pytest.mark.parametrize("addr", ["../etc@" + DOMAIN, "a/b@" + DOMAIN, "x@other.org",
                                  "nul\x00l@" + DOMAIN, "noat"])
def test_unsafe_addresses_are_refused(store, addr):
    for call in (store.accounts.get_password, store.accounts.get_last_login, store.accounts.enforces_e2ee_incoming):
        with pytest.raises(ValueError):
            call(addr)
    with pytest.raises(ValueError):
        store.accounts.create_account(addr, HASH, NOW)
    with pytest.raises(ValueError):
        store.accounts.set_last_login(addr, day_of(NOW))


def test_last_login_is_recorded_and_seen_by_other_hosts(backend, store):
    addr = addr_of("loginday1")
    store.accounts.create_account(addr, HASH, NOW)
    later = day_of(NOW) + 5 * 86400
    assert store.accounts.set_last_login(addr, later) is True
    assert store.accounts.set_last_login(addr, later) is True
    assert backend.new().accounts.get_last_login(addr) == later


def test_last_login_for_unknown_address_creates_nothing(store):
    addr = addr_of("nobody123")
    assert store.accounts.set_last_login(addr, day_of(NOW)) is False
    assert store.accounts.get_last_login(addr) is None
    assert store.accounts.get_password(addr) is None
    assert list(store.accounts.iter_accounts()) == []


def test_iter_accounts_lists_every_account_once(store):
    addrs = sorted(addr_of(f"acct{i:05d}") for i in range(1500))
    for addr in addrs:
        store.accounts.create_account(addr, HASH, NOW)
    assert sorted(store.accounts.iter_accounts()) == addrs


def test_iter_accounts_of_empty_store(store):
    assert list(store.accounts.iter_accounts()) == []


def test_store_works_from_threads_after_close_and_reopen(backend):
    addr = addr_of("reopened1")
    first = backend.new()
    first.accounts.create_account(addr, HASH, NOW)
    first.close()
    assert backend.new().accounts.get_password(addr) == HASH


def test_files_layout_is_unchanged_by_the_interface(make_config):
    # the files backend must keep writing the reference layout (no extra files)
    config = make_config()
    store = open_store(config)
    addr = addr_of("layout123")
    store.transfer.import_account(addr, HASH, day_of(NOW), False)
    home = config.mailboxes_path / addr
    assert sorted(os.listdir(home)) == ["password"]
    assert int((home / "password").stat().st_mtime) == day_of(NOW)


# -- deletion: the account with its tokens and queued notifications --------
def test_delete_account_takes_its_record_tokens_and_queued_items(store):
    store.accounts.create_account(ADDR, HASH, NOW)
    store.accounts.create_account(OTHER, HASH, NOW)
    add(store, "phone")
    add(store, "kept", addr=OTHER)
    store.push.enqueue_push(ADDR, ["phone"], NOW, NOW + 100)
    store.push.enqueue_push(OTHER, ["kept"], NOW, NOW + 100)
    assert store.accounts.delete_account(ADDR) is True
    assert store.accounts.get_password(ADDR) is None and store.accounts.get_last_login(ADDR) is None
    assert store.push.get_tokens(ADDR, NOW, MAX_AGE) == []
    assert [p.addr for p in store.push.iter_pending_notifications()] == [OTHER]
    items, _ = store.push.claim_push(NOW + 1000, 10, 30)
    assert [(i.addr, i.token) for i in items] == [(OTHER, "kept")]
    assert sorted(store.accounts.iter_accounts()) == [OTHER]
    assert store.accounts.delete_account(ADDR) is False


def test_delete_accounts_counts_the_ones_that_existed(store):
    store.accounts.create_account(ADDR, HASH, NOW)
    store.accounts.create_account(OTHER, HASH, NOW)
    store.push.enqueue_push(OTHER, ["x"], NOW, NOW + 100)
    assert store.accounts.delete_accounts([ADDR, OTHER, "ghostghos@" + DOMAIN]) == 2
    assert list(store.accounts.iter_accounts()) == []
    assert list(store.push.iter_pending_notifications()) == []


def test_delete_account_refuses_unsafe_addresses(store):
    store.accounts.create_account(ADDR, HASH, NOW)
    for addr in ("../etc@" + DOMAIN, "a/b@" + DOMAIN, "x@other.org"):
        with pytest.raises(ValueError):
            store.accounts.delete_account(addr)
        with pytest.raises(ValueError):
            store.accounts.delete_accounts([ADDR, addr])
    assert store.accounts.get_password(ADDR) == HASH  # a bad batch deletes nothing
