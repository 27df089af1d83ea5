"""Prometheus metrics: the /metrics resource every daemon can expose.

Metrics are defined by the daemons next to the code that counts them, in
prometheus_client's default registry; exposition is prometheus_client's own
(never hand-built text). No metric carries a per-user label.
"""

import time

from twisted.web.resource import Resource
from twisted.web.server import Site


class QuietSite(Site):
    """A Site without the access log: it would write client IPs to the journal."""

    noisy = False

    def log(self, request):
        pass


def metrics_site() -> Site:
    from prometheus_client.twisted import MetricsResource

    root = Resource()
    root.putChild(b"metrics", MetricsResource())
    return QuietSite(root)


def timed(d, histogram, clock=time.perf_counter):
    """Observe in `histogram` the seconds until Deferred `d` fires; returns `d`."""
    started = clock()

    def observe(result):
        histogram.observe(clock() - started)
        return result

    return d.addBoth(observe)
