"""core/threads.BlockingPool on a real reactor and real threads."""

import os
import threading

from twisted.internet import defer

from chatmail_services.core.runner import BlockingPool
from chatmail_services.core.threads import PoolStopped

from ..ownreactor import on_reactor


def own_priority():
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def own_policy():
    return os.sched_getscheduler(threading.get_native_id())


def priorities(nice, idle=False, probe=own_priority):
    """What `probe` says in its threads, for a few jobs of a pool at `nice`."""
    def run(reactor):
        pool = BlockingPool(reactor, 2, "test", nice=nice, idle=idle)
        pool.startService()
        d = defer.gatherResults([pool.run(probe) for _ in range(6)])
        return d.addBoth(lambda result: (pool.stopService(), result)[1])
    return set(on_reactor(run))


def test_a_nice_pool_runs_its_jobs_at_a_lower_priority_than_the_process():
    base = own_priority()
    assert priorities(5) == {min(19, base + 5)}
    assert priorities(0) == {base}
    assert own_priority() == base  # the caller's thread is untouched


def test_an_idle_pool_runs_its_jobs_under_sched_idle():
    base = own_policy()
    assert base != os.SCHED_IDLE
    assert priorities(19, idle=True, probe=own_policy) == {os.SCHED_IDLE}
    assert priorities(19, idle=True) == {19}  # and at nice 19 too
    assert priorities(19, probe=own_policy) == {base}
    assert own_policy() == base


def test_results_and_failures_fire_on_the_reactor_thread():
    reactor_thread = threading.get_ident()
    seen = []

    def boom():
        raise ValueError("from the job")

    def run(reactor):
        pool = BlockingPool(reactor, 2, "test")
        pool.startService()
        ok = pool.run(lambda a, b=0: (threading.get_ident(), a + b), 1, b=2)
        bad = pool.run(boom)
        ok.addCallback(lambda r: seen.append(("ok", r[1], r[0] != reactor_thread,
                                              threading.get_ident() == reactor_thread)))
        bad.addErrback(lambda f: seen.append(("failed", f.getErrorMessage(),
                                              threading.get_ident() == reactor_thread)))
        return defer.gatherResults([ok, bad]).addBoth(lambda _: pool.stopService())
    on_reactor(run)
    assert sorted(seen) == [("failed", "from the job", True), ("ok", 3, True, True)]


def test_many_jobs_run_on_at_most_size_threads_and_all_answer():
    gate = threading.Event()

    def job(i):
        gate.wait(5)
        return i, threading.get_ident()

    def run(reactor):
        pool = BlockingPool(reactor, 3, "test")
        pool.startService()
        ds = [pool.run(job, i) for i in range(50)]
        reactor.callLater(0.05, gate.set)  # all 50 queued while three threads wait
        return defer.gatherResults(ds).addBoth(lambda r: (pool.stopService(), r)[1])
    results = on_reactor(run)
    assert [i for i, _ in results] == list(range(50))
    assert len({thread for _, thread in results}) == 3


def test_jobs_before_start_wait_for_it_and_jobs_after_stop_fail():
    def run(reactor):
        pool = BlockingPool(reactor, 2, "test")
        early = pool.run(lambda: "early")
        assert not early.called  # no thread before the service starts
        pool.startService()

        def stop(result):
            pool.stopService()
            late = pool.run(lambda: "late")
            return late.addErrback(lambda f: (result, f.check(PoolStopped)))
        return early.addCallback(stop)
    assert on_reactor(run) == ("early", PoolStopped)


def test_stopping_finishes_the_queued_jobs_first():
    done = []

    def run(reactor):
        pool = BlockingPool(reactor, 1, "test")
        pool.startService()
        ds = [pool.run(lambda i=i: done.append(i) or i) for i in range(5)]
        pool.stopService()  # joins: the queued jobs ran
        assert done == [0, 1, 2, 3, 4]
        return defer.gatherResults(ds)  # and their answers still arrive
    assert on_reactor(run) == [0, 1, 2, 3, 4]
