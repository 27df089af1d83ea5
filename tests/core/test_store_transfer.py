"""The Transfer role's contract (export and import, for `chatmailctl store
migrate`), run over every backend: files and a real redis-server (fixtures in
conftest.py)."""

import time

import pytest

from chatmail_services.core.days import day_of
from chatmail_services.core.store import PushItem

DOMAIN = "chat.example.org"
ADDR = "abcdefghi@" + DOMAIN
OTHER = "otherone1@" + DOMAIN
# Recent, not fixed: Redis expires last-login records by its own clock.
NOW = int(time.time())
MAX_AGE = 90 * 86400
HASH = "{SHA512-CRYPT}$6$s$h"


@pytest.fixture
def store(store):
    """The backend's store with the account ADDR."""
    store.accounts.create_account(ADDR, HASH, NOW)
    return store


def addr_of(localpart):
    return f"{localpart}@{DOMAIN}"


def add(store, token, now=NOW, addr=ADDR):
    return store.push.add_token(addr, token, now, MAX_AGE, 16)


def test_import_account_keeps_day_and_flag(store):
    plain, strict = addr_of("imported1"), addr_of("imported2")
    old_day = day_of(NOW) - 30 * 86400
    assert store.transfer.import_account(plain, HASH, old_day, False) is True
    assert store.transfer.import_account(strict, HASH, old_day, True) is True
    assert store.accounts.get_password(plain) == HASH
    assert store.accounts.get_last_login(plain) == old_day
    assert store.accounts.enforces_e2ee_incoming(plain) is False
    assert store.accounts.enforces_e2ee_incoming(strict) is True


def test_import_account_leaves_an_existing_account_untouched(store):
    addr = addr_of("existing1")
    store.accounts.create_account(addr, HASH, NOW)
    assert store.transfer.import_account(addr, "{X}other", day_of(NOW) - 86400, False) is False
    assert store.accounts.get_password(addr) == HASH
    assert store.accounts.get_last_login(addr) == day_of(NOW)
    assert store.accounts.enforces_e2ee_incoming(addr) is True


def test_token_times_include_expired_tokens(store):
    add(store, "old", NOW)
    add(store, "new", NOW + 5)
    assert store.transfer.token_times(ADDR) == {"old": NOW, "new": NOW + 5}
    assert store.transfer.token_times(OTHER) == {}


def test_exported_queue_imports_once_with_deadline_and_attempts(backend, store):
    store.accounts.create_account(OTHER, HASH, NOW)
    store.push.enqueue_push(ADDR, ["a", "b"], NOW, NOW + 100)
    (item,), _ = store.push.claim_push(NOW, 1, 30)
    store.push.reschedule_push(item, NOW + 50, 3)
    exported = list(store.transfer.export_push())
    other_token = ({"a", "b"} - {item.token}).pop()
    assert sorted((i.addr, i.token, i.deadline, i.attempts, i.queued_at) for i in exported) == \
        sorted([(ADDR, item.token, NOW + 100, 3, NOW), (ADDR, other_token, NOW + 100, 0, NOW)])
    store.accounts.delete_account(ADDR)
    moved = [PushItem(i.id, OTHER, i.token, i.deadline, i.attempts, i.queued_at)
             for i in exported]
    assert store.transfer.import_push(moved, NOW + 1) == 2
    assert store.transfer.import_push(moved, NOW + 1) == 0  # same ids: queued once
    items, _ = store.push.claim_push(NOW + 1, 10, 30)
    assert sorted((i.addr, i.token, i.deadline, i.attempts) for i in items) == sorted(
        (OTHER, i.token, NOW + 100, i.attempts) for i in exported)


def test_import_skips_items_of_unknown_accounts(store):
    ghost = PushItem("0123456789abcdef0123456789abcdef", "ghostghos@" + DOMAIN, "t", NOW + 9)
    assert store.transfer.import_push([ghost], NOW) == 0
    assert list(store.push.iter_pending_notifications()) == []
