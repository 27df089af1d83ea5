"""A fresh epoll reactor per test, for code that needs real sockets and timers.

The global reactor can run only once per process; each test here gets an
instance of its own, runs it until its Deferred fires, and closes it.
"""

from twisted.internet import defer
from twisted.internet.epollreactor import EPollReactor


def on_reactor(fn, timeout=20.0):
    """Run `fn(reactor)` on a fresh epoll reactor until the Deferred it returns
    fires; its result, or its exception raised here."""
    reactor, out = EPollReactor(), []

    def start():
        d = defer.maybeDeferred(fn, reactor)
        d.addBoth(out.append).addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.callLater(timeout, reactor.stop)
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        reactor.waker.connectionLost(None)
        reactor._poller.close()
    assert out, f"no answer within {timeout} s"
    if isinstance(out[0], defer.Failure):
        out[0].raiseException()
    return out[0]
