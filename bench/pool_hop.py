#!/usr/bin/env python3
"""CPU per thread-pool hop: Twisted's ThreadPool against core/threads.BlockingPool.

A hop is what a daemon pays to run one blocking call off the reactor: the
job handed to a thread, its result handed back, its Deferred fired on the
reactor thread. Both pools get the same no-op jobs, `--concurrency` in
flight at a time (as the push notifier keeps its POSTs), alternating, on
one reactor; the figure is this process's CPU time per job.

    .venv/bin/python bench/pool_hop.py [--jobs 20000] [--concurrency 16] [--rounds 2]
"""

import argparse
import resource
import time

from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from chatmail_services.core.threads import BlockingPool


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(run, jobs: int, concurrency: int) -> defer.Deferred:
    """Fires with (µs of CPU per job, jobs per second)."""
    state = {"left": jobs, "inflight": 0}
    finished = defer.Deferred()
    started, cpu = time.monotonic(), cpu_seconds()

    def refill():
        while state["inflight"] < concurrency and state["left"] > 0:
            state["left"] -= 1
            state["inflight"] += 1
            run(int).addCallback(answered)

    def answered(_):
        state["inflight"] -= 1
        if state["left"] == 0 and state["inflight"] == 0:
            elapsed = time.monotonic() - started
            finished.callback(((cpu_seconds() - cpu) / jobs * 1e6, jobs / elapsed))
        else:
            refill()

    refill()
    return finished


@defer.inlineCallbacks
def main(args):
    twisted_pool = ThreadPool(minthreads=1, maxthreads=args.concurrency, name="twisted")
    twisted_pool.start()
    ours = BlockingPool(reactor, args.concurrency, "ours")
    ours.startService()
    sides = [("Twisted ThreadPool", lambda fn: deferToThreadPool(reactor, twisted_pool, fn)),
             ("core/threads.BlockingPool", ours.run)]
    try:
        for _ in range(args.rounds):
            for name, run in sides:
                us, rate = yield measure(run, args.jobs, args.concurrency)
                print(f"{name:27} {us:6.1f} µs CPU per hop, {rate:8.0f} hops/s")
    finally:
        twisted_pool.stop()
        ours.stopService()
        reactor.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    reactor.callWhenRunning(main, parser.parse_args())
    reactor.run()
