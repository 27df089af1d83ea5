"""chatmailctl dns: the printed zone, and --check against a real DNS server on loopback
(scripts/zone_dns.py, twisted.names) serving that zone right, with records missing,
and with records wrong."""

import asyncio
import io
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.exception
import pytest
import yaml

from chatmail_services.ctl.dns import lookup
from chatmail_services.ctl.main import run
from dkim_keys import make_dkim_key
from freeport import free_port

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
DOMAIN = "chat.example.org"


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """The relay's config and its DKIM records; the tests only read it, so one
    per module (an RSA key takes a while to make)."""
    tmp_path = tmp_path_factory.mktemp("dns")
    key, record = make_dkim_key(tmp_path, "rsa", "dkim")
    ed_key, ed_record = make_dkim_key(tmp_path, "ed25519", "ed")
    path = tmp_path / "chatmail.yaml"
    path.write_text(yaml.safe_dump({
        "mail_domain": DOMAIN, "mailboxes_dir": str(tmp_path / "mail"),
        "filtermail": {"dkim": {"sign": {"selector": "dkim", "key_file": str(key),
                                         "ed25519_selector": "ed",
                                         "ed25519_key_file": str(ed_key)}}}}))
    return str(path), record.decode(), ed_record.decode()


def ctl(config, *argv):
    out, err = io.StringIO(), io.StringIO()
    status = run(["--config", config, *argv], out, err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def nameserver(tmp_path_factory):
    """A twisted.names server on a free loopback port; write its zone to `.zone`.
    It reads the zone on every query, so each test writes the whole zone it
    needs and one server serves the module."""
    port = free_port()
    zone = tmp_path_factory.mktemp("nameserver") / "zone"
    zone.write_text("")
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "zone_dns.py"), "--port", str(port),
                             "--zone", str(zone)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert proc.poll() is None and time.monotonic() < deadline, "zone_dns.py did not start"
        time.sleep(0.05)

    class Server:
        address = f"127.0.0.1:{port}"

    Server.zone = zone
    yield Server
    proc.terminate()
    proc.wait(timeout=10)


def zone_of(config, *extra):
    return ctl(config, "dns", "--ipv4", "192.0.2.10", "--ipv6", "2001:db8::10", *extra)[1]


def test_the_zone_has_every_record_the_relay_needs(config):
    status, out, _ = ctl(config[0], "dns", "--ipv4", "192.0.2.10")
    lines = {tuple(line.split()[:4]) for line in out.splitlines()}
    d = f"{DOMAIN}."
    assert status == 0
    for name, rtype in [(d, "A"), (d, "MX"), (d, "TXT"), (f"dkim._domainkey.{d}", "TXT"),
                        (f"ed._domainkey.{d}", "TXT"), (f"_dmarc.{d}", "TXT"),
                        (f"_mta-sts.{d}", "TXT"), (f"_smtp._tls.{d}", "TXT"),
                        (f"_submissions._tcp.{d}", "SRV"), (f"_imaps._tcp.{d}", "SRV"),
                        (f"mta-sts.{d}", "CNAME"), (f"autoconfig.{d}", "CNAME")]:
        assert (name, "3600", "IN", rtype) in lines
    assert f'"v=spf1 a:{DOMAIN} -all"' in out
    assert '"v=DMARC1; p=reject; adkim=s; aspf=s"' in out
    dkim = next(line for line in out.splitlines() if line.startswith("dkim._domainkey"))
    # a 2048-bit key's record is longer than one TXT string: split, and whole again
    assert "".join(dkim.split('"')[1::2]) == config[1]
    assert config[2] in out


def test_check_passes_when_the_nameserver_serves_the_zone(config, nameserver):
    nameserver.zone.write_text(zone_of(config[0]))
    status, out, _ = ctl(config[0], "dns", "--check", "--nameserver", nameserver.address,
                         "--ipv4", "192.0.2.10", "--ipv6", "2001:db8::10")
    assert (status, out.splitlines()[-1]) == (0, "all records present"), out
    assert "MISSING" not in out and "WRONG" not in out


def test_check_names_missing_records_and_exits_5(config, nameserver):
    zone = [line for line in zone_of(config[0]).splitlines()
            if not line.startswith(("_dmarc.", "ed._domainkey.", "mta-sts."))]
    nameserver.zone.write_text("\n".join(zone) + "\n")
    status, out, _ = ctl(config[0], "dns", "--check", "--nameserver", nameserver.address,
                         "--ipv4", "192.0.2.10", "--ipv6", "2001:db8::10")
    missing = [line.split()[1] for line in out.splitlines() if line.startswith("MISSING")]
    assert status == 5 and out.splitlines()[-1] == "3 of the relay's records missing or wrong"
    assert sorted(missing) == [f"_dmarc.{DOMAIN}.", f"ed._domainkey.{DOMAIN}.",
                               f"mta-sts.{DOMAIN}."]


def test_check_names_wrong_records_and_exits_5(config, nameserver):
    zone = (zone_of(config[0])
            .replace("192.0.2.10", "192.0.2.99")
            .replace("p=reject", "p=none")
            .replace(f"a:{DOMAIN} -all", f"a:{DOMAIN} ~all")
            .replace(f"993 {DOMAIN}.", f"993 imap.elsewhere.example."))
    nameserver.zone.write_text(zone)
    status, out, _ = ctl(config[0], "dns", "--check", "--nameserver", nameserver.address,
                         "--ipv4", "192.0.2.10", "--ipv6", "2001:db8::10")
    wrong = {line.split()[1] + " " + line.split()[2].rstrip(":")
             for line in out.splitlines() if line.startswith("WRONG")}
    assert status == 5
    assert wrong == {f"{DOMAIN}. A", f"{DOMAIN}. TXT", f"_dmarc.{DOMAIN}. TXT",
                     f"_imaps._tcp.{DOMAIN}. SRV"}, out
    assert "p=reject" in next(line for line in out.splitlines() if "_dmarc" in line)


def test_an_unreachable_nameserver_is_reported_not_a_traceback(config):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never answering
        status, out, err = ctl(config[0], "dns", "--check", "--nameserver", f"127.0.0.1:{port}",
                               "--ipv4", "192.0.2.10", "--timeout", "0.01")
    assert status == 5 and "lookup failed" in out and err == ""


class Retrying:
    """A resolver still retrying when the lookup's time is up (dnspython's sleeps
    its back-off first, 0.1 s and more): it answers, but long after."""

    async def resolve(self, name, rtype, search):
        await asyncio.sleep(30)
        return ["192.0.2.10"]


def test_a_lookup_ends_at_its_timeout_even_while_the_resolver_retries():
    with pytest.raises(dns.exception.Timeout):
        lookup(Retrying(), f"{DOMAIN}.", "A", timeout=0.01)
