"""Threads for blocking work (disk, hashing, sync clients): `BlockingPool`.

A job goes to the threads through a `queue.SimpleQueue` (put and get in C),
and its result comes back to the reactor thread, where its Deferred fires.
The results that finish while the reactor is still busy with earlier ones
travel together: one `callFromThread`, one wake-up of the reactor, for all
of them. Twisted's ThreadPool coordinates its workers through Python-level
locks and conditions and wakes the reactor for every result: five times the
CPU per job (bench/pool_hop.py: 70-77 against 13-14 µs on the bench machine).

Threads start when work waits and none is idle, up to `size`. Stopping the
service lets the threads finish the jobs already queued, then joins them; a
job submitted after that fails at once instead of waiting forever.
"""

import os
import queue
import threading

from twisted.application.service import Service
from twisted.internet import defer
from twisted.python.failure import Failure

_STOP = object()


class PoolStopped(RuntimeError):
    """A job was submitted to a pool that has stopped (the daemon is exiting)."""


class BlockingPool(Service):
    """A small thread pool for blocking work.

    `nice` > 0 runs its threads at that much lower CPU priority than the
    process (setpriority(2) on each thread): work that may wait, such as
    hashing a burst of new accounts, then yields the CPUs to the reactor.
    `idle` also puts them under SCHED_IDLE (sched(7)): they run only on a
    CPU that nothing else of normal priority wants at that moment.
    """

    def __init__(self, reactor, size: int, name: str, nice: int = 0, idle: bool = False):
        self.reactor, self.size, self.thread_name, self.nice = reactor, size, name, nice
        self.idle = idle
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = []
        self._idle = 0  # threads waiting for a job
        self._waiting = 0  # jobs queued and not taken yet
        self._done = []  # (Deferred, ok, result) not handed to the reactor yet
        self._wake_pending = False
        self._stopped = False

    def run(self, fn, *args, **kwargs) -> defer.Deferred:
        """`fn(*args, **kwargs)` in a thread; a Deferred of its result, fired
        on the reactor thread."""
        d = defer.Deferred()
        if self._stopped:
            d.errback(PoolStopped(f"thread pool {self.thread_name} has stopped"))
            return d
        with self._lock:
            self._waiting += 1
            new = self._grow(1) if self.running else []
        self._jobs.put((d, fn, args, kwargs))
        for thread in new:
            thread.start()
        return d

    def _grow(self, wanted: int) -> list:
        """Threads to start for `wanted` more waiting jobs (under the lock)."""
        new = []
        while (len(self._threads) < self.size
               and self._waiting > self._idle + len(new) and len(new) < wanted):
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f"{self.thread_name}-{len(self._threads)}")
            self._threads.append(thread)
            new.append(thread)
        return new

    def startService(self):
        super().startService()
        with self._lock:  # jobs submitted before the start run now
            new = self._grow(self._waiting)
        for thread in new:
            thread.start()

    def stopService(self):
        super().stopService()
        self._stopped = True
        threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(_STOP)  # after the jobs already queued
        for thread in threads:
            thread.join()

    # -- in the pool's threads ----------------------------------------------
    def _work(self):
        tid = threading.get_native_id()
        if self.nice:
            try:
                level = min(19, os.getpriority(os.PRIO_PROCESS, 0) + self.nice)
                os.setpriority(os.PRIO_PROCESS, tid, level)
            except OSError:  # lowering is always allowed; a sandbox may still refuse
                pass
        if self.idle:
            try:
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            except OSError:  # as above: the nice value alone then
                pass
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
                if job is not _STOP:
                    self._waiting -= 1
            if job is _STOP:
                return
            d, fn, args, kwargs = job
            try:
                outcome = (d, True, fn(*args, **kwargs))
            except BaseException:
                outcome = (d, False, Failure())
            del job, d, fn, args, kwargs  # nothing of the job outlives it here
            with self._lock:
                self._done.append(outcome)
                wake, self._wake_pending = not self._wake_pending, True
            outcome = None
            if wake:
                self.reactor.callFromThread(self._deliver)

    # -- on the reactor thread ------------------------------------------------
    def _deliver(self):
        with self._lock:
            done, self._done, self._wake_pending = self._done, [], False
        for d, ok, result in done:
            if ok:
                d.callback(result)
            else:
                d.errback(result)
