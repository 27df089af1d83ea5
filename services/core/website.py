"""The twisted.web Site of our daemons: no access log, and the /metrics one.

Apart from core/metrics.py so that a daemon imports twisted.web only when it
serves HTTP (/metrics, doveauth's Lua front-end, the web front): 3.8 MiB
of idle RSS that lastlogin and filtermail without `metrics` never load.
"""

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
