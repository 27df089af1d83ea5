"""Cheap store reads on the reactor thread, blocking ones in a thread pool.

A thread-pool hop costs a dict request more CPU than the read it carries
when the read is a small local file (bench/README.md, "Where the time and
the memory go"). So a daemon asks `reads_runner(store, pool)` where its
reads run: the files store's reads (`Store.blocking_reads` False) are called
inline and answer with a plain value; a network client's (Redis) must never
block the reactor and keep the pool. Hashing and fsynced writes always keep
their pools.

Handlers chain the next step with `then()`, which works on a plain value and
on a Deferred alike, so one handler serves both; core/dictproto.py writes a
plain value's reply at once. No cache: every read goes to the store, so
several processes and hosts always see the same accounts.
"""

from twisted.internet.defer import Deferred


class Inline:
    """The `run()` of a thread pool, done here and now: a value or an exception."""

    def run(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)


INLINE = Inline()


def reads_runner(store, pool):
    """Where `store`'s reads run: inline, or in `pool` when they may block."""
    return pool if store.blocking_reads else INLINE


def then(result, fn, *args):
    """`fn(result, *args)`, now for a plain value, later for a Deferred."""
    if isinstance(result, Deferred):
        return result.addCallback(fn, *args)
    return fn(result, *args)
