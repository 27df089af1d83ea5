"""core/runner.BlockingPool on a real reactor and real threads: `nice`."""

import os
import threading

from twisted.internet import defer

from chatmail_services.core.runner import BlockingPool

from ..ownreactor import on_reactor


def own_priority():
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def priorities(nice):
    """The priority its threads run at, for a few jobs of a pool at `nice`."""
    def run(reactor):
        pool = BlockingPool(reactor, 2, "test", nice=nice)
        pool.startService()
        d = defer.gatherResults([pool.run(own_priority) for _ in range(6)])
        return d.addBoth(lambda result: (pool.stopService(), result)[1])
    return set(on_reactor(run))


def test_a_nice_pool_runs_its_jobs_at_a_lower_priority_than_the_process():
    base = own_priority()
    assert priorities(5) == {min(19, base + 5)}
    assert priorities(0) == {base}
    assert own_priority() == base  # the caller's thread is untouched
