"""The push notifier on a task.Clock: outcomes, back-off, the deadline, restarts."""

import pytest
from twisted.internet import error

from chatmail_services.metadata.notifier import retry_delay

from ..conftest import HeldPool
from .conftest import T0

HOUR = 3600


def start(p, *tokens, **metadata):
    for i, token in enumerate(tokens):
        p.store.add_token(p.addr, token, T0 - 10 + i, 90 * 86400, 16)
    p.notifier.startService()
    assert p.policy.message_new(p.addr, p.clock.seconds()) == len(tokens)
    p.notifier.wake()


def test_every_token_is_posted_once_and_200_completes(push):
    p = push()
    p.poster.script = [200, 200]
    start(p, "phone", "tablet")
    assert sorted(p.poster.posted) == ["phone", "tablet"]
    assert p.queued() == []
    p.clock.advance(10 * HOUR)
    assert len(p.poster.posted) == 2


def test_410_removes_the_dead_token_only(push):
    p = push()
    p.poster.by_token = {"dead": 410, "alive": 200}
    start(p, "dead", "alive")
    assert sorted(p.poster.posted) == ["alive", "dead"]
    assert p.tokens() == ["alive"]
    assert p.queued() == []


def test_410_for_a_deleted_account_recreates_nothing(push):
    p = push()
    p.poster.script = [410]
    start(p, "tok")
    home = p.stores.accounts.layout.home(p.addr)
    # the account is deleted while the notification was pending
    p.poster.script = []
    import shutil

    shutil.rmtree(home)
    p.notifier.stopService()
    p.store.enqueue_push(p.addr, ["tok"], p.clock.seconds(), p.clock.seconds() + 100)
    p.poster.script = [410]
    p.notifier.startService()
    assert not home.exists()
    assert p.queued() == []


@pytest.mark.parametrize("failure", [500, 429, error.TimeoutError(), error.ConnectionRefusedError()])
def test_failures_are_retried_with_backoff_until_success(push, failure):
    p = push(notify_retry_min=4, notify_retry_max=1800)
    p.poster.script = [failure, failure, 200]
    start(p, "tok")
    assert len(p.poster.posted) == 1
    p.clock.advance(3.9)
    assert len(p.poster.posted) == 1
    p.clock.advance(0.1)  # first retry after 4 s (jitter fixed at its maximum)
    assert len(p.poster.posted) == 2
    p.clock.advance(7.9)
    assert len(p.poster.posted) == 2
    p.clock.advance(0.1)  # then 8 s
    assert len(p.poster.posted) == 3
    assert p.queued() == []


def test_retry_delay_doubles_jitters_and_is_capped():
    assert [retry_delay(n, 4, 1800, lambda: 1.0) for n in (1, 2, 3)] == [4, 8, 16]
    assert retry_delay(20, 4, 1800, lambda: 1.0) == 1800
    assert retry_delay(1000, 4, 1800, lambda: 0.0) == 900
    assert retry_delay(3, 4, 1800, lambda: 0.0) == 8


def test_retries_go_on_for_five_hours_and_then_the_item_is_dropped(push):
    p = push()
    assert p.config.metadata.notify_deadline == 5 * HOUR
    start(p, "tok")
    times = []
    while p.poster.pending:
        times.append(p.clock.seconds() - T0)
        p.poster.pending.pop().callback(503)
        timer = p.notifier._timer
        if timer is not None and timer.active():
            p.clock.advance(timer.getTime() - p.clock.seconds())
    assert times[0] == 0
    assert max(times) == 5 * HOUR  # a last attempt at the deadline itself
    assert any(4.5 * HOUR < t < 5 * HOUR for t in times)
    assert p.queued() == []
    p.clock.advance(24 * HOUR)
    assert len(p.poster.posted) == len(times)


def test_the_deadline_survives_a_restart(push):
    p = push()
    p.poster.script = [503]
    start(p, "tok")
    p.notifier.stopService()  # "crash" after one failed attempt
    p.clock.advance(4 * HOUR)
    restarted = p.make_notifier()
    p.poster.script = [503] * 100
    restarted.startService()
    p.clock.advance(HOUR - 1)
    before = len(p.poster.posted)
    assert before > 2
    p.clock.advance(2)
    p.clock.advance(10 * HOUR)
    assert len(p.poster.posted) <= before + 1
    assert p.queued() == []


def test_a_pending_item_is_sent_after_a_restart(push):
    p = push()
    start(p, "tok")  # the request hangs: no answer before the "crash"
    assert len(p.poster.pending) == 1
    p.notifier.stopService()
    p.poster.pending.clear()
    restarted = p.make_notifier()
    p.poster.script = [200]
    restarted.startService()
    assert len(p.poster.posted) == 1  # still claimed by the dead process...
    p.clock.advance(p.config.metadata.notify_timeout + 10)  # ...until its lease ends
    assert p.poster.posted == ["tok", "tok"]
    assert p.queued() == []


def test_an_item_claimed_after_its_deadline_is_dropped_unsent(push):
    p = push()
    p.store.add_token(p.addr, "tok", T0, 90 * 86400, 16)
    p.policy.message_new(p.addr, T0)
    p.clock.advance(6 * HOUR)
    p.notifier.startService()
    assert p.poster.posted == []
    assert p.queued() == []


def test_concurrency_is_bounded(push):
    p = push(notify_concurrency=2)
    start(p, "a", "b", "c", "d", "e")
    assert len(p.poster.pending) == 2
    p.poster.pending.pop(0).callback(200)
    assert len(p.poster.pending) == 2
    assert len(p.poster.posted) == 3
    while p.poster.pending:
        p.poster.pending.pop(0).callback(200)
    assert sorted(p.poster.posted) == ["a", "b", "c", "d", "e"]
    assert p.queued() == []


class FlakyStore:
    """Wraps the files store and fails chosen calls once (a disk error)."""

    def __init__(self, store, fail):
        self.store, self.fail = store, set(fail)

    def __getattr__(self, name):
        method = getattr(self.store, name)

        def call(*args):
            if name in self.fail:
                self.fail.discard(name)
                from chatmail_services.core.store import StoreError

                raise StoreError("disk on fire")
            return method(*args)

        return call


@pytest.mark.parametrize("broken", ["claim_push", "complete_push", "reschedule_push"])
def test_store_failures_never_stop_the_notifier(push, broken):
    p = push()
    p.store = FlakyStore(p.store, [broken])
    p.notifier = p.make_notifier()
    p.poster.script = [503, 200, 200, 200]
    start(p, "tok")
    p.clock.advance(120)
    p.clock.advance(120)
    assert p.queued() == []
    p.poster.script = [200]
    p.policy.message_new(p.addr, p.clock.seconds())
    p.notifier.wake()
    assert p.queued() == []


def test_a_poster_bug_never_stops_the_notifier(push):
    p = push()
    p.poster.script = [RuntimeError("bug"), 200]
    start(p, "tok")
    p.clock.advance(10)
    assert p.poster.posted == ["tok", "tok"]
    assert p.queued() == []


def test_items_done_while_a_removal_runs_are_removed_together_in_one_call(push):
    from chatmail_services.metadata.notifier import Notifier

    p = push()
    for i, token in enumerate(["a", "b", "c"]):
        p.store.add_token(p.addr, token, T0 - 10 + i, 90 * 86400, 16)
    p.policy.message_new(p.addr, p.clock.seconds())
    pool = HeldPool()
    p.notifier = Notifier(p.policy, p.store, pool, p.poster, p.clock, p.config.metadata)
    p.poster.script = [200, 200, 200]
    p.notifier.startService()
    pool.release()  # the claim: three POSTs, answered 200 at once
    assert sorted(p.poster.posted) == ["a", "b", "c"]
    removals = [args for _, fn, args in pool.pending if fn == p.store.complete_pushes]
    assert [len(items) for (items,) in removals] == [1]  # the first at once, two wait
    pool.release()
    removals = [args for _, fn, args in pool.pending if fn == p.store.complete_pushes]
    assert [len(items) for (items,) in removals] == [2]
    pool.release()
    while pool.pending:  # claims woken by the finished sends: nothing left
        pool.release()
    assert p.queued() == []
