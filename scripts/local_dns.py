"""A DNS server on loopback for the local relay: records from a JSON file.

    python local_dns.py --port PORT --zone FILE [--address 127.0.0.1]

FILE maps names to records. A string is a TXT value, e.g.
{"dkim._domainkey.chat.example.org": "v=DKIM1; k=rsa; p=..."}; an object
holds records by type, e.g. {"remote.example": {"MX": [[10, "mx.remote.example"]]},
"mx.remote.example": {"A": ["127.0.0.2"]}} (TXT: a string or a list). The
value "SERVFAIL" makes the server fail for that name. The file is read on
every query, so tests may change it while the server runs. Unknown names are
NXDOMAIN. Built on twisted.names, for the local relay and the integration
tests only (DKIM keys for filtermail; MX, A and MTA-STS records for mail to
loopback "remote" servers).
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
        records = value if isinstance(value, dict) else {"TXT": value}
        answers = [answer(query.name.name, kind, data)
                   for kind, data in records_of(records, query.type)]
        return defer.succeed((answers, [], []))


_TYPES = {"TXT": dns.TXT, "MX": dns.MX, "A": dns.A}


def records_of(records: dict, qtype: int):
    """(type, data) pairs of `records` that answer a query of `qtype`."""
    for kind, values in records.items():
        if qtype not in (_TYPES[kind], dns.ALL_RECORDS):
            continue
        for data in [values] if isinstance(values, str) else values:
            yield kind, data


def answer(name: bytes, kind: str, data) -> dns.RRHeader:
    if kind == "TXT":
        payload = dns.Record_TXT(*[data[i:i + 255].encode() for i in range(0, len(data), 255)],
                                 ttl=60)
    elif kind == "MX":
        payload = dns.Record_MX(data[0], data[1].encode(), ttl=60)
    else:
        payload = dns.Record_A(data, ttl=60)
    return dns.RRHeader(name, _TYPES[kind], ttl=60, payload=payload)


def serve(resolver_class, description):
    """Parse --port and --zone, answer with `resolver_class(zone)` on loopback UDP and TCP."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--zone", required=True)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    factory = server.DNSServerFactory(clients=[resolver_class(args.zone)])
    reactor.listenUDP(args.port, dns.DNSDatagramProtocol(factory), interface=args.address)
    reactor.listenTCP(args.port, factory, interface=args.address)
    reactor.run()


def main():
    serve(ZoneFileResolver, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
