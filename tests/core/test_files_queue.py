"""The files push queue's due-heap: it drains, and the files stay the truth
across a restart and for other processes (each one a separate open_files)."""

import pytest

from chatmail_services.core.store.files import open_files
from chatmail_services.core.store.files.queue import QUEUE_DIR, RECONCILE

DOMAIN = "chat.example.org"
ADDR = f"someone12@{DOMAIN}"
NOW = 1_700_000_000


@pytest.fixture
def open_store(tmp_path):
    def make():
        return open_files(tmp_path / "mail", DOMAIN)

    first = make()
    first.accounts.create_account(ADDR, "{SHA512-CRYPT}$6$x$y", NOW)
    return make


def queue_files(tmp_path):
    return sorted(p.name for p in (tmp_path / "mail" / QUEUE_DIR).iterdir()
                  if not p.name.startswith("."))


def test_a_backlog_drains_in_due_order_without_losing_an_item(open_store, tmp_path):
    store = open_store()
    for i in range(50):
        store.push.enqueue_push(ADDR, [f"t{i}"], NOW + i / 100, NOW + 100)
    seen = []
    while True:
        items, _ = store.push.claim_push(NOW + 1, 8, 30)
        if not items:
            break
        seen += [i.token for i in items]
        for item in items:
            store.push.complete_push(item)
    assert seen == [f"t{i}" for i in range(50)]
    assert queue_files(tmp_path) == []
    assert store.push.claim_push(NOW + 1000, 8, 30) == ([], None)


def test_a_restarted_process_finds_queued_and_leased_items(open_store):
    before = open_store()
    before.push.enqueue_push(ADDR, ["leased", "waiting"], NOW, NOW + 100)
    (leased,), _ = before.push.claim_push(NOW, 1, 30)
    after = open_store()  # the restart: a fresh heap from the directory
    items, next_due = after.push.claim_push(NOW + 1, 10, 30)
    assert [i.token for i in items] == ["waiting" if leased.token == "leased" else "leased"]
    assert next_due == NOW + 30
    (again,), _ = after.push.claim_push(NOW + 30, 10, 30)
    assert again.token == leased.token


def test_items_another_process_queued_are_claimed_after_the_reconcile_time(open_store):
    notifier, other = open_store(), open_store()
    assert notifier.push.claim_push(NOW, 10, 30) == ([], None)
    other.push.enqueue_push(ADDR, ["from-elsewhere"], NOW, NOW + 100)
    (item,), _ = notifier.push.claim_push(NOW + RECONCILE, 10, 30)
    assert item.token == "from-elsewhere"


def test_an_item_claimed_or_removed_elsewhere_is_skipped(open_store):
    notifier, other = open_store(), open_store()
    notifier.push.enqueue_push(ADDR, ["a", "b"], NOW, NOW + 100)
    other.push.claim_push(NOW, 1, 30)  # another claimer takes the first
    items, _ = notifier.push.claim_push(NOW, 10, 30)
    assert len(items) == 1
    notifier.push.enqueue_push(ADDR, ["c"], NOW, NOW + 100)
    other.accounts.delete_account(ADDR)  # its queued items go with it
    assert notifier.push.claim_push(NOW + 1, 10, 30)[0] == []


def test_a_rescheduled_item_is_due_at_its_new_time_only(open_store):
    store = open_store()
    store.push.enqueue_push(ADDR, ["a"], NOW, NOW + 100)
    (item,), _ = store.push.claim_push(NOW, 1, 30)
    store.push.reschedule_push(item, NOW + 10, 1)
    assert store.push.claim_push(NOW + 9, 10, 30) == ([], NOW + 10)
    (again,), _ = store.push.claim_push(NOW + 10, 10, 30)
    assert (again.token, again.attempts) == ("a", 1)
