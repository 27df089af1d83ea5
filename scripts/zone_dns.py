"""A DNS server on loopback that answers from a zone file: `chatmailctl dns` output.

    python zone_dns.py --port PORT --zone FILE

FILE holds zone lines as `chatmailctl dns` prints them (`NAME TTL IN TYPE
RDATA`; `;` starts a comment) for A, AAAA, MX, TXT, SRV and CNAME. It is
read on every query, so tests may change it while the server runs. Unknown
names are NXDOMAIN, known names without the type answer no data. Built on
twisted.names like local_dns.py; for the tests of `chatmailctl dns --check`.
"""

import shlex

from twisted.internet import defer
from twisted.names import dns, error

from local_dns import serve

RECORDS = {
    "A": lambda v: dns.Record_A(v[0]),
    "AAAA": lambda v: dns.Record_AAAA(v[0]),
    "MX": lambda v: dns.Record_MX(int(v[0]), v[1].encode()),
    "TXT": lambda v: dns.Record_TXT(*(s.encode() for s in v)),
    "SRV": lambda v: dns.Record_SRV(int(v[0]), int(v[1]), int(v[2]), v[3].encode()),
    "CNAME": lambda v: dns.Record_CNAME(v[0].encode()),
}


def read_zone(path):
    """{(name, type): [rdata fields, ...]} of a zone file."""
    zone = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.lstrip().startswith(";"):
                continue
            name, _ttl, _in, rtype, *rdata = shlex.split(line)
            zone.setdefault((name.rstrip(".").lower(), rtype), []).append(rdata)
    return zone


class ZoneResolver:
    def __init__(self, path):
        self.path = path

    def query(self, query, timeout=None):
        name = query.name.name.decode("ascii", "replace").rstrip(".").lower()
        zone = read_zone(self.path)
        if not any(key[0] == name for key in zone):
            return defer.fail(error.DomainError(name))
        rtype = dns.QUERY_TYPES.get(query.type, "")
        answers = [dns.RRHeader(query.name.name, query.type, ttl=60,
                                payload=RECORDS[rtype](rdata))
                   for rdata in zone.get((name, rtype), [])]
        return defer.succeed((answers, [], []))


def main():
    serve(ZoneResolver, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
