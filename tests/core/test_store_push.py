"""The PushQueue role's contract (push tokens and the push queue), run over
every backend (the `backend` and `store` fixtures are in conftest.py:
files, and a real redis-server). Times are a fixed clock: stores take `now`.
"""

import multiprocessing
import threading

import pytest

from chatmail_services.core.store import PendingNotification, PushItem

DOMAIN = "chat.example.org"
ADDR = "abcdefghi@" + DOMAIN
OTHER = "otherone1@" + DOMAIN
NOW = 1_700_000_000
DAY = 86400
MAX_AGE = 90 * DAY
HASH = "{SHA512-CRYPT}$6$s$h"


@pytest.fixture
def store(store):
    """The backend's store with the account ADDR."""
    store.accounts.create_account(ADDR, HASH, NOW)
    return store


def add(store, token, now=NOW, max_tokens=16, addr=ADDR):
    return store.push.add_token(addr, token, now, MAX_AGE, max_tokens)


# -- tokens ------------------------------------------------------------------
def test_tokens_of_several_devices_are_kept_newest_first(store):
    assert add(store, "phone", NOW) and add(store, "tablet", NOW + 5)
    assert store.push.get_tokens(ADDR, NOW + 10, MAX_AGE) == ["tablet", "phone"]


def test_setting_a_token_again_refreshes_it(store):
    add(store, "phone", NOW)
    add(store, "tablet", NOW + 5)
    add(store, "phone", NOW + 9)
    assert store.push.get_tokens(ADDR, NOW + 10, MAX_AGE) == ["phone", "tablet"]


def test_a_token_expires_after_max_age_unless_set_again(store):
    add(store, "old", NOW)
    add(store, "renewed", NOW)
    add(store, "renewed", NOW + 60 * DAY)
    assert store.push.get_tokens(ADDR, NOW + MAX_AGE - 1, MAX_AGE) == ["renewed", "old"]
    assert store.push.get_tokens(ADDR, NOW + MAX_AGE + 1, MAX_AGE) == ["renewed"]


def test_a_backwards_clock_step_keeps_tokens(store):
    add(store, "phone", NOW)
    assert store.push.get_tokens(ADDR, NOW - 30 * DAY, MAX_AGE) == ["phone"]
    add(store, "tablet", NOW - 30 * DAY)  # a write with the stepped-back clock
    assert store.push.get_tokens(ADDR, NOW - 30 * DAY, MAX_AGE) == ["phone", "tablet"]


def test_beyond_max_tokens_the_oldest_is_dropped(store):
    for i in range(5):
        add(store, f"t{i}", NOW + i, max_tokens=3)
    assert store.push.get_tokens(ADDR, NOW + 10, MAX_AGE) == ["t4", "t3", "t2"]


def test_remove_token_removes_only_that_token(store):
    add(store, "phone", NOW)
    add(store, "tablet", NOW + 1)
    assert store.push.remove_token(ADDR, "phone") is True
    assert store.push.remove_token(ADDR, "phone") is False
    assert store.push.get_tokens(ADDR, NOW + 2, MAX_AGE) == ["tablet"]


def test_no_account_means_no_tokens_and_nothing_created(store):
    ghost = "ghostghos@" + DOMAIN
    assert store.push.get_tokens(ghost, NOW, MAX_AGE) == []
    assert add(store, "phone", addr=ghost) is False
    assert store.push.remove_token(ghost, "phone") is False
    assert store.push.get_tokens(ghost, NOW, MAX_AGE) == []
    assert store.accounts.get_password(ghost) is None


def test_concurrent_adds_from_threads_never_lose_a_token(store):
    barrier = threading.Barrier(12)

    def device(i):
        barrier.wait()
        add(store, f"device-{i}", NOW + i)

    threads = [threading.Thread(target=device, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(store.push.get_tokens(ADDR, NOW + 20, MAX_AGE)) == sorted(
        f"device-{i}" for i in range(12))


def _add_many(store, prefix):
    for i in range(10):
        add(store, f"{prefix}-{i}", NOW + i, max_tokens=50)


def test_concurrent_adds_from_processes_never_lose_a_token(store):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_many, args=(store, f"p{n}")) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(store.push.get_tokens(ADDR, NOW + 20, MAX_AGE)) == 30


# -- queue ---------------------------------------------------------------------
def test_enqueued_items_are_claimed_once_with_their_deadline(store):
    assert store.push.enqueue_push(ADDR, ["a", "b"], NOW, NOW + 100) == 2
    items, next_due = store.push.claim_push(NOW, 10, 30)
    assert sorted((i.addr, i.token, i.deadline, i.attempts) for i in items) == [
        (ADDR, "a", NOW + 100, 0), (ADDR, "b", NOW + 100, 0)]
    assert next_due is None
    assert store.push.claim_push(NOW + 29, 10, 30) == ([], NOW + 30)


def test_an_unfinished_claim_comes_back_after_the_lease(store):
    store.push.enqueue_push(ADDR, ["a"], NOW, NOW + 100)
    (first,), _ = store.push.claim_push(NOW, 10, 30)
    (again,), _ = store.push.claim_push(NOW + 30, 10, 30)
    assert (again.token, again.deadline) == ("a", NOW + 100)
    store.push.complete_push(again)
    assert store.push.claim_push(NOW + 1000, 10, 30) == ([], None)


def test_claim_respects_limit_and_due_time(store):
    store.push.enqueue_push(ADDR, ["a", "b", "c"], NOW, NOW + 100)
    store.push.enqueue_push(ADDR, ["later"], NOW + 50, NOW + 150)
    items, next_due = store.push.claim_push(NOW, 2, 300)
    assert len(items) == 2 and next_due == NOW
    items, next_due = store.push.claim_push(NOW, 2, 300)
    assert len(items) == 1 and next_due == NOW + 50
    (item,), _ = store.push.claim_push(NOW + 50, 2, 300)
    assert item.token == "later"


def test_reschedule_keeps_deadline_and_counts_attempts_across_reopen(store, backend):
    store.push.enqueue_push(ADDR, ["a"], NOW, NOW + 100)
    (item,), _ = store.push.claim_push(NOW, 10, 30)
    store.push.reschedule_push(item, NOW + 8, 1)
    assert store.push.claim_push(NOW + 7, 10, 30) == ([], NOW + 8)
    reopened = backend.new()
    (item,), _ = reopened.push.claim_push(NOW + 8, 10, 30)
    reopened.close()
    assert (item.token, item.deadline, item.attempts) == ("a", NOW + 100, 1)


def test_completed_items_are_gone(store):
    store.push.enqueue_push(ADDR, ["a"], NOW, NOW + 100)
    (item,), _ = store.push.claim_push(NOW, 10, 30)
    store.push.complete_push(item)
    store.push.complete_push(item)  # twice is harmless
    assert store.push.claim_push(NOW + 1000, 10, 30) == ([], None)


def test_several_completed_at_once_are_gone(store):
    store.push.enqueue_push(ADDR, ["a", "b", "c"], NOW, NOW + 100)
    items, _ = store.push.claim_push(NOW, 10, 30)
    store.push.complete_pushes(items[:2])
    store.push.complete_pushes([])
    left, _ = store.push.claim_push(NOW + 1000, 10, 30)
    assert [i.token for i in left] == [items[2].token]


def test_one_failed_completion_does_not_keep_the_others(store, monkeypatch):
    from chatmail_services.core.store.roles import PushQueue

    store.push.enqueue_push(ADDR, ["a", "b", "c"], NOW, NOW + 100)
    items, _ = store.push.claim_push(NOW, 10, 30)
    real = store.push.complete_push

    def broken_for_the_first(item):  # fault injection into the role's own method
        if item is items[0]:
            raise OSError("disk on fire")
        real(item)

    monkeypatch.setattr(store.push, "complete_push", broken_for_the_first)
    with pytest.raises(OSError):
        PushQueue.complete_pushes(store.push, items)  # the default: one by one
    left, _ = store.push.claim_push(NOW + 1000, 10, 30)
    assert [i.token for i in left] == [items[0].token]


def test_enqueue_of_no_tokens_queues_nothing(store):
    assert store.push.enqueue_push(ADDR, [], NOW, NOW + 100) == 0
    assert store.push.claim_push(NOW, 10, 30) == ([], None)


def test_concurrent_claims_hand_out_each_item_once(store):
    store.push.enqueue_push(ADDR, [f"t{i}" for i in range(40)], NOW, NOW + 100)
    got, barrier = [], threading.Barrier(4)

    def claimer():
        barrier.wait()
        for _ in range(20):
            got.extend(store.push.claim_push(NOW, 3, 30)[0])

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i.token for i in got) == sorted(f"t{i}" for i in range(40))
    assert all(isinstance(i, PushItem) for i in got)


def test_claims_on_several_hosts_hand_out_each_item_once(backend, store):
    store.push.enqueue_push(ADDR, [f"t{i}" for i in range(30)], NOW, NOW + 100)
    hosts = [backend.new() for _ in range(3)]
    got, barrier = [], threading.Barrier(3)

    def claimer(host):
        barrier.wait()
        for _ in range(15):
            got.extend(host.push.claim_push(NOW, 2, 30)[0])

    threads = [threading.Thread(target=claimer, args=(h,)) for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i.token for i in got) == sorted(f"t{i}" for i in range(30))


def test_an_item_claimed_by_a_dead_host_is_sent_by_another(backend, store):
    store.push.enqueue_push(ADDR, ["orphan"], NOW, NOW + 100)
    dying = backend.new()
    (claimed,), _ = dying.push.claim_push(NOW, 10, 30)
    dying.close()  # the host is gone without completing or rescheduling
    other = backend.new()
    assert other.push.claim_push(NOW + 29, 10, 30) == ([], NOW + 30)
    (again,), _ = other.push.claim_push(NOW + 30, 10, 30)
    assert (again.addr, again.token, again.deadline) == (ADDR, "orphan", NOW + 100)
    other.close()


# -- account deletion and the queue as admin tools see it ----------------------
def test_iter_pending_notifications_lists_every_item_without_its_token(store):
    store.accounts.create_account(OTHER, HASH, NOW)
    store.push.enqueue_push(ADDR, ["secret-a", "secret-b"], NOW, NOW + 100)
    store.push.enqueue_push(OTHER, ["secret-c"], NOW + 5, NOW + 105)
    store.push.claim_push(NOW, 1, 30)  # a claimed item is still pending
    pending = list(store.push.iter_pending_notifications())
    assert all(isinstance(p, PendingNotification) for p in pending)
    assert sorted((p.addr, p.queued_at) for p in pending) == [
        (ADDR, NOW), (ADDR, NOW), (OTHER, NOW + 5)]
    assert len({p.id for p in pending}) == 3
    assert "secret" not in repr(pending)


def test_iter_pending_notifications_of_an_empty_queue(store):
    assert list(store.push.iter_pending_notifications()) == []


def test_a_claimed_item_of_a_deleted_account_is_not_rescheduled(store):
    add(store, "phone")
    store.push.enqueue_push(ADDR, ["phone"], NOW, NOW + 100)
    (item,), _ = store.push.claim_push(NOW, 10, 30)
    store.accounts.delete_account(ADDR)
    store.push.reschedule_push(item, NOW + 5, 1)  # the notifier's answer arrives late
    store.push.complete_push(item)
    assert store.push.claim_push(NOW + 1000, 10, 30) == ([], None)
    assert list(store.push.iter_pending_notifications()) == []


def test_a_recreated_account_starts_without_tokens(store):
    add(store, "phone")
    store.accounts.delete_account(ADDR)
    assert add(store, "phone") is False
    store.accounts.create_account(ADDR, HASH, NOW)
    assert store.push.get_tokens(ADDR, NOW, MAX_AGE) == []
