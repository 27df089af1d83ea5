"""Where a daemon's hot-path store reads run: on the reactor thread when the
store can answer there without blocking it, else in a thread pool.

A thread-pool hop costs a dict request more CPU than the read it carries
(bench/README.md, "Where the time and the memory go"). So a daemon asks
`store_reads(store, pool, reactor)` for its reads (`roles.Reads`): the files
store's own methods, called inline (small local files, a plain value); the
Redis backend's reactor-side client (a Deferred, store/redis/wire.py); or,
for a store without either (Redis over TLS), the roles' methods run in
`pool`. Hashing and writes always keep their pools.

Handlers chain the next step with `then()`, which works on a plain value and
on a Deferred alike, so one handler serves every store; core/dictproto.py
writes a plain value's reply at once. No cache: every read goes to the
store, so several processes and hosts always see the same accounts.
"""

from twisted.internet.defer import Deferred

from .store.roles import Reads


class Pooled:
    """A role whose every method call runs in a thread pool (a Deferred)."""

    def __init__(self, role, pool):
        self._role, self._pool = role, pool

    def __getattr__(self, name):
        method = getattr(self._role, name)
        return lambda *args: self._pool.run(method, *args)


def store_reads(store, pool, reactor) -> Reads:
    """The hot-path reads of `store`: on the reactor if it can, else in `pool`."""
    if store.reactor_reads is not None:
        return store.reactor_reads(reactor)
    return Reads(Pooled(store.accounts, pool), Pooled(store.push, pool))


def then(result, fn, *args):
    """`fn(result, *args)`, now for a plain value, later for a Deferred."""
    if isinstance(result, Deferred):
        return result.addCallback(fn, *args)
    return fn(result, *args)
