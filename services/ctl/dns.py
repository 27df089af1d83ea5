"""`chatmailctl dns [--check]`: the zone records a relay needs, and whether DNS has them.

Printed as zone-file lines for `mail_domain` (D): A/AAAA (from --ipv4/--ipv6),
MX (the relay is its own MX), SPF (`v=spf1 a:D -all`), DKIM (one TXT per
key of `filtermail.dkim.sign`, built from the key file), DMARC (`p=reject`,
strict alignment), MTA-STS (`_mta-sts` TXT with the policy's id, and the
`mta-sts` host for the web front's policy file), TLS-RPT, the RFC 6186/8314
SRV records for IMAP and submission, and CNAMEs of the web front's names.

`--check` asks a nameserver (`--nameserver HOST[:PORT]`, default the
system's resolver) for each and prints `ok`, `MISSING` or `WRONG` lines;
exit status 5 when anything is missing or wrong.
"""

import base64
import hashlib
import shlex
from dataclasses import dataclass
from typing import Callable, List, Optional

from ..core.weblinks import mta_sts

TTL = 3600
EXIT_DNS = 5


@dataclass(frozen=True)
class Record:
    name: str
    type: str
    value: str
    # answers (as text) -> None when right, else what is wrong
    check: Callable[[List[str]], Optional[str]]

    def line(self) -> str:
        return f"{self.name:<36} {TTL} IN {self.type:<5} {self.value}"


def txt(value: str) -> str:
    """A TXT value in zone syntax, split into strings of at most 255 bytes."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def unquote(answer: str) -> str:
    return "".join(shlex.split(answer))


def _exact(expected: str, norm=lambda s: s.lower().rstrip(".")):
    def check(answers):
        if any(norm(a) == norm(expected) for a in answers):
            return None
        return f"expected {expected}, got {', '.join(answers) or 'nothing'}"
    return check


def _txt_with(prefix: str, must=(), equal: Optional[str] = None):
    """A TXT record starting with `prefix` (exactly one), with tags `must`."""
    def check(answers):
        found = [unquote(a) for a in answers if unquote(a).startswith(prefix)]
        if len(found) != 1:
            return f"expected one {prefix} record, got {len(found)}"
        value = found[0]
        if equal is not None and value.replace(" ", "") != equal.replace(" ", ""):
            return f"expected {equal!r}, got {value!r}"
        tags = {t.strip() for t in value.split(";")}
        missing = [m for m in must if m not in tags]
        return f"{value!r} lacks {', '.join(missing)}" if missing else None
    return check


def _present(answers):
    return None if answers else "no record"


def dkim_value(key_file: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    with open(key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None).public_key()
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def records(config, ipv4=None, ipv6=None, key_path=str) -> List[Record]:
    """The zone records; `key_path` maps a configured key file to where it is
    read (`chatmailctl setup --root` reads it inside the tree)."""
    d = config.mail_domain
    host = f"{d}."
    out = [Record(host, "A", ipv4 or "<IPv4 address>", _exact(ipv4) if ipv4 else _present)]
    if ipv6:
        out.append(Record(host, "AAAA", ipv6, _exact(ipv6, lambda s: s.lower())))
    spf = f"v=spf1 a:{d} -all"
    dmarc = "v=DMARC1; p=reject; adkim=s; aspf=s"
    sts_id = hashlib.sha256(mta_sts(d)).hexdigest()[:16]
    out += [
        Record(host, "MX", f"10 {host}", _exact(host, lambda s: s.lower().rstrip(".").split()[-1])),
        Record(host, "TXT", txt(spf), _txt_with("v=spf1", equal=spf)),
        *(Record(f"{sel}._domainkey.{host}", "TXT", txt(value),
                 _txt_with("v=DKIM1", equal=value)) for sel, value in dkim_keys(config, key_path)),
        Record(f"_dmarc.{host}", "TXT", txt(dmarc),
               _txt_with("v=DMARC1", must=("p=reject", "adkim=s", "aspf=s"))),
        Record(f"_mta-sts.{host}", "TXT", txt(f"v=STSv1; id={sts_id}"),
               _txt_with("v=STSv1", must=(f"id={sts_id}",))),
        Record(f"_smtp._tls.{host}", "TXT", txt(f"v=TLSRPTv1; rua=mailto:postmaster@{d}"),
               _txt_with("v=TLSRPTv1")),
    ]
    for service, port in (("imap", 143), ("imaps", 993), ("submission", 587),
                          ("submissions", 465)):
        out.append(Record(f"_{service}._tcp.{host}", "SRV", f"0 1 {port} {host}",
                          _exact(f"0 1 {port} {host}", _srv_norm)))
    for name in ("mta-sts", "autoconfig", "www"):
        out.append(Record(f"{name}.{host}", "CNAME", host, _exact(host)))
    return out


def _srv_norm(value: str) -> str:
    _, _, port, target = value.lower().split()
    return f"{port} {target.rstrip('.')}"


def dkim_keys(config, key_path=str):
    sign = config.filtermail.dkim.sign
    if sign is None:
        return []
    keys = [(sign.selector, dkim_value(key_path(sign.key_file)))]
    if sign.ed25519_selector and sign.ed25519_key_file:
        keys.append((sign.ed25519_selector, dkim_value(key_path(sign.ed25519_key_file))))
    return keys


def lookup(resolver, name: str, rtype: str, timeout: float) -> List[str]:
    """The answers as text; [] for NXDOMAIN or no data. Other errors raise.

    Over after `timeout` seconds: dnspython's resolver checks its lifetime only
    after the back-off between retries (0.1 s, doubling up to 2 s), so on its
    own a lookup to a silent server overran the timeout by that much."""
    import asyncio

    import dns.exception
    import dns.resolver

    query = resolver.resolve(name, rtype, search=False)
    try:
        answer = asyncio.run(asyncio.wait_for(query, timeout))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except asyncio.TimeoutError:
        raise dns.exception.Timeout(timeout=timeout) from None
    return [r.to_text() for r in answer]


def make_resolver(nameserver: Optional[str], timeout: float = 5.0):
    import dns.asyncresolver

    resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        host, _, port = nameserver.rpartition(":") if nameserver.count(":") == 1 \
            else (nameserver, "", "")
        resolver.nameservers = [host or nameserver]
        resolver.port = int(port or 53)
    resolver.lifetime = timeout
    return resolver


def show(config, out, ipv4=None, ipv6=None, key_path=str) -> int:
    if config.filtermail.dkim.sign is None:
        out.write("; no DKIM record: filtermail.dkim.sign is not configured\n")
    for record in records(config, ipv4, ipv6, key_path):
        out.write(record.line() + "\n")
    return 0


def check(config, out, nameserver=None, ipv4=None, ipv6=None, timeout=5.0) -> int:
    import dns.exception

    resolver = make_resolver(nameserver, timeout)
    bad = 0
    for record in records(config, ipv4, ipv6):
        try:
            answers = lookup(resolver, record.name, record.type, timeout)
        except dns.exception.DNSException as e:
            answers, problem = [], f"lookup failed: {e}"
        else:
            problem = record.check(answers)
        if problem is None:
            out.write(f"ok       {record.name} {record.type}\n")
        elif not answers:
            bad += 1
            out.write(f"MISSING  {record.line()}" + (f"  ({problem})" if "failed" in problem
                                                    else "") + "\n")
        else:
            bad += 1
            out.write(f"WRONG    {record.name} {record.type}: {problem}\n")
    out.write(f"{bad} of the relay's records missing or wrong\n" if bad
              else "all records present\n")
    return EXIT_DNS if bad else 0
