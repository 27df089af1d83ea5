"""Prometheus metrics: what the daemons count with, cheaply.

Metrics are defined by the daemons next to the code that counts them, in
prometheus_client's default registry; exposition is prometheus_client's own
(never hand-built text), served by core/website.py. No metric carries a
per-user label.
"""

import time

from twisted.internet.defer import Deferred


class LastSuccess:
    """A "when did this last work" gauge, cheap enough to mark on every request.

    `Gauge.set_to_current_time()` takes a lock per call; here a request only
    stores a float, and the gauge reads it when Prometheus scrapes (0 until
    the first mark, as a fresh Gauge would say).
    """

    def __init__(self, name: str, documentation: str):
        from prometheus_client import Gauge

        self.at = 0.0
        Gauge(name, documentation).set_function(lambda: self.at)

    def mark(self) -> None:
        self.at = time.time()


def timed(d, histogram, clock=time.perf_counter):
    """Observe in `histogram` the seconds until Deferred `d` fires; returns `d`."""
    return d.addBoth(_observed, histogram, clock(), clock)


def timed_call(histogram, fn, *args, clock=time.perf_counter):
    """`fn(*args)`, observing in `histogram` the seconds until its answer: at
    once for a plain value (or an exception), when it fires for a Deferred."""
    started = clock()
    try:
        result = fn(*args)
    except Exception:
        histogram.observe(clock() - started)
        raise
    if isinstance(result, Deferred):
        return result.addBoth(_observed, histogram, started, clock)
    histogram.observe(clock() - started)
    return result


def _observed(result, histogram, started, clock):
    histogram.observe(clock() - started)
    return result
