"""A DNS server on loopback for the local relay: TXT records from a JSON file.

    python local_dns.py --port PORT --zone FILE

FILE maps names to TXT values, e.g. {"dkim._domainkey.chat.example.org":
"v=DKIM1; k=rsa; p=..."}; the value "SERVFAIL" makes the server fail for
that name. The file is read on every query, so tests may change it while the
server runs. Unknown names are NXDOMAIN. Built on twisted.names, for the
local relay and the integration tests only (DKIM keys for filtermail).
"""

import argparse
import json

from twisted.internet import defer, reactor
from twisted.names import dns, error, server


class ZoneFileResolver:
    def __init__(self, path):
        self.path = path

    def query(self, query, timeout=None):
        name = query.name.name.decode("ascii", "replace").rstrip(".").lower()
        with open(self.path) as f:
            zone = {k.lower(): v for k, v in json.load(f).items()}
        value = zone.get(name)
        if value == "SERVFAIL":
            # not a DomainError: DNSServerFactory answers those with NXDOMAIN
            return defer.fail(RuntimeError(f"SERVFAIL configured for {name}"))
        if value is None:
            return defer.fail(error.DNSNameError(name))
        if query.type not in (dns.TXT, dns.ALL_RECORDS):
            return defer.succeed(([], [], []))
        chunks = [value[i:i + 255].encode() for i in range(0, len(value), 255)]
        answer = dns.RRHeader(query.name.name, dns.TXT, ttl=60,
                              payload=dns.Record_TXT(*chunks, ttl=60))
        return defer.succeed(([answer], [], []))


def serve(resolver_class, description):
    """Parse --port and --zone, answer with `resolver_class(zone)` on loopback UDP and TCP."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--zone", required=True)
    args = parser.parse_args()
    factory = server.DNSServerFactory(clients=[resolver_class(args.zone)])
    reactor.listenUDP(args.port, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
    reactor.listenTCP(args.port, factory, interface="127.0.0.1")
    reactor.run()


def main():
    serve(ZoneFileResolver, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
