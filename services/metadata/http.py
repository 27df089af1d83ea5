"""POSTing a device token to the notification service, with Twisted's HTTP client.

One `Agent` with a persistent connection pool (as many idle connections as
the notifier may have requests in flight), TLS verified like a browser does
(hostname and chain) against the system CAs plus, for a private endpoint,
`metadata.notify_ca_file`, read once at start. Each request is cancelled
after `metadata.notify_timeout` seconds. The body is the token as UTF-8 text, as
notifications.delta.chat expects; the answer is the HTTP status code.
"""

from OpenSSL import SSL
from twisted.internet import defer
# The trust-root interface is only importable from here (Twisted 14 to 26 alike).
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.ssl import platformTrust
from twisted.web.client import (
    Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool, PartialDownloadError, readBody,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer

HEADERS = {b"Content-Type": [b"text/plain; charset=utf-8"],
           b"User-Agent": [b"chatmail-metadata"]}


@implementer(IOpenSSLTrustRoot)
class SystemAndFileTrust:
    """The system CAs and the certificates of one PEM file."""

    def __init__(self, ca_file: str):
        self.ca_file = ca_file
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        try:  # fail at start-up, naming the file, not at the first notification
            context.load_verify_locations(ca_file)
        except SSL.Error:
            raise ValueError(f"metadata.notify_ca_file: no usable certificates in {ca_file}")

    def _addCACertsToContext(self, context):
        context.set_default_verify_paths()
        context.load_verify_locations(self.ca_file)


@implementer(IBodyProducer)
class _Body:
    """A request body that is already in memory (no cooperator, no reactor)."""

    def __init__(self, data: bytes):
        self.data = data
        self.length = len(data) if data else UNKNOWN_LENGTH

    def startProducing(self, consumer):
        consumer.write(self.data)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


@implementer(IPolicyForHTTPS)
class _OneCreatorPerHost:
    """A policy's TLS connection creator, made once per host and port.

    Agent asks for one on every request, even one that goes out on a pooled
    connection, and each new creator builds an SSL context and loads the CA
    certificates again: 15 % of the reactor's time in a backlog drain
    (bench/README.md). A creator is made to be reused for every connection
    to its host."""

    def __init__(self, policy):
        self.policy, self.creators = policy, {}

    def creatorForNetloc(self, hostname, port):
        creator = self.creators.get((hostname, port))
        if creator is None:
            creator = self.creators[hostname, port] = self.policy.creatorForNetloc(hostname, port)
        return creator


class _QuietPool(HTTPConnectionPool):
    """Connection pool whose factories do not log every connection they start."""

    class _factory(HTTPConnectionPool._factory):
        noisy = False


class HttpPoster:
    def __init__(self, reactor, url: str, ca_file, timeout: float, concurrency: int):
        self.reactor = reactor
        self.url = url.encode("ascii")
        self.timeout = timeout
        pool = _QuietPool(reactor, persistent=True)
        pool.maxPersistentPerHost = concurrency
        trust = SystemAndFileTrust(ca_file) if ca_file else platformTrust()
        self.pool = pool
        self.agent = Agent(reactor, _OneCreatorPerHost(BrowserLikePolicyForHTTPS(trust)),
                           pool=pool, connectTimeout=timeout)

    def post(self, token: str) -> defer.Deferred:
        """POST the token; fires with the status code, fails on timeout or error."""
        d = self.agent.request(b"POST", self.url, Headers(HEADERS),
                               _Body(token.encode("utf-8", "surrogateescape")))
        d.addCallback(self._read)
        d.addTimeout(self.timeout, self.reactor)
        return d

    @staticmethod
    def _read(response):
        # Read the (small) body so the connection can go back to the pool; a
        # body cut short does not change what the status code said.
        d = readBody(response)
        d.addErrback(lambda failure: failure.trap(PartialDownloadError))
        return d.addCallback(lambda _: response.code)

    def close(self) -> defer.Deferred:
        return self.pool.closeCachedConnections()
