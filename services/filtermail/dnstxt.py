"""Asynchronous TXT lookups for DKIM keys, with a small cache.

Twisted's DNS client (twisted.names) asks the configured nameservers
(``filtermail.dkim.nameservers``, "host:port") or those of
/etc/resolv.conf. Outcomes are three, because DKIM needs to tell them apart
(RFC 6376 section 6.1.2): a record (bytes), no record (None: NXDOMAIN or no
TXT data, a permanent failure of that signature), or `DnsTemporaryError`
(timeout, SERVFAIL, refused...: the message is answered 451 and retried).

Answers are cached by name for their TTL (at most an hour; "no record" for a
minute), at most `max_entries` names; temporary failures are not cached.
"""

from collections import OrderedDict

from twisted.internet import defer
from twisted.names import client, dns, error

from ..core.failures import Temporary

MAX_TTL = 3600
NEGATIVE_TTL = 60


class DnsTemporaryError(Temporary):
    """The DNS could not answer now; try again later."""


def parse_nameservers(entries):
    """["127.0.0.1:5353", "::1"] -> [("127.0.0.1", 5353), ("::1", 53)]."""
    servers = []
    for entry in entries:
        host, sep, port = entry.rpartition(":")
        if not sep or "]" in port or (host.count(":") and not host.endswith("]")):
            host, port = entry, "53"
        servers.append((host.strip("[]"), int(port)))
    return servers


def make_resolver(reactor, nameservers, timeout: float):
    """A twisted.names client for `nameservers` (empty: /etc/resolv.conf)."""
    servers = parse_nameservers(nameservers)
    if servers:
        resolver = client.Resolver(servers=servers, reactor=reactor)
    else:
        resolver = client.Resolver(resolv="/etc/resolv.conf", reactor=reactor)
    return TxtLookup(reactor, resolver, timeout)


class TxtLookup:
    """lookup(name) -> Deferred[bytes | None]; see the module docstring."""

    def __init__(self, reactor, resolver, timeout: float = 5.0, max_entries: int = 1000):
        self.reactor = reactor
        self.resolver = resolver
        self.timeouts = (timeout / 3, timeout * 2 / 3)  # two tries, total `timeout`
        self.max_entries = max_entries
        self.cache = OrderedDict()

    @defer.inlineCallbacks
    def lookup(self, name: str):
        name = name.rstrip(".").lower()
        cached = self.cache.get(name)
        if cached is not None and cached[0] > self.reactor.seconds():
            return cached[1]
        try:
            answers, _, _ = yield self.resolver.lookupText(name, timeout=self.timeouts)
        except error.DNSNameError:  # NXDOMAIN; its DomainError siblings (SERVFAIL...) are not
            return self._remember(name, None, NEGATIVE_TTL)
        except Exception as e:  # timeouts, SERVFAIL, REFUSED, network errors
            raise DnsTemporaryError(f"{type(e).__name__}: {e}") from None
        # (a CNAME chain, as for delegated DKIM keys, ends in the TXT record)
        records = [a for a in answers if a.type == dns.TXT]
        if not records:
            return self._remember(name, None, NEGATIVE_TTL)
        value = b"".join(records[0].payload.data)
        return self._remember(name, value, min(records[0].ttl, MAX_TTL))

    def _remember(self, name, value, ttl):
        self.cache[name] = (self.reactor.seconds() + ttl, value)
        self.cache.move_to_end(name)
        while len(self.cache) > self.max_entries:
            self.cache.popitem(last=False)
        return value
