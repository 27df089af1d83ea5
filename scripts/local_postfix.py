"""The mail part of the local relay: Debian's Postfix, filtermail, a DNS server.

`chatmailctl setup` wires <dir>/etc/postfix (before-queue `master.cf` or
`master-after-queue.cf`); before it, this sets the instance's own places,
after it only install paths and ports differ from a server:

    /etc/postfix/        -> <dir>/etc/postfix/      (Postfix's config_directory)
    /var/spool/postfix   -> <dir>/postfix/spool     (its queue_directory)
    smtp/submission/submissions inet, 127.0.0.1:100xx -> free loopback ports

Postfix runs as its own instance (`postfix -c <dir>/postfix/etc start`) with
its own queue, data directory and log file; the system's /etc/postfix and
any system instance are never touched. Debian's postfix-mta-sts-resolver
runs beside it on a free loopback port (main.cf's socketmap). Mail to other
domains goes to a closed loopback port and stays deferred. filtermail runs
as vmail and signs with the DKIM key setup made (the config names none:
signing is the default); a twisted.names server on loopback serves its TXT
record (scripts/local_dns.py), so incoming DKIM verification works offline.

With `outside=(address, ca_file)` (the integration tests of outgoing mail),
that DNS server listens on `address`:53 and also answers MX, A and MTA-STS
records for "remote" domains; Postfix and the MTA-STS resolver run in a
private mount namespace whose /etc/resolv.conf names it (the system's file
is untouched), Postfix delivers by MX as in production, and both trust the
test CA in `ca_file` besides the system's.
"""

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

from chatmail_services.ctl.dns import dkim_value

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SELECTOR = "dkim"
FILTER_PORTS = (10080, 10081, 10025, 10026)
MTA_STS_PORT = 8461
# master.cf.dist services that need packages we lack
DROPPED = re.compile(r"^(maildrop|uucp|ifmail|bsmtp|scalemail-backend|mailman)\b")


class PostfixPart:
    def __init__(self, relay, mode: str, free_port, outside=None):
        self.relay = relay
        self.mode = mode
        self.outside = outside  # (DNS address, CA file) or None
        self.dir = relay.base / "postfix"
        self.etc = relay.base / "etc" / "postfix"
        self.spool = self.dir / "spool"
        self.data = self.dir / "lib"
        self.ports = {name: free_port() for name in ("smtp", "submission", "submissions")}
        self.filter_ports = {p: free_port() for p in FILTER_PORTS}
        self.mta_sts_port = free_port()
        self.dns_host, self.dns_port = (outside[0], 53) if outside else ("127.0.0.1", free_port())
        self.zone = relay.base / "dns.json"
        self.dkim_key = relay.config_path.parent / "dkim" / f"{SELECTOR}.key"

    # -- rendering ---------------------------------------------------------
    def replace_ports(self, text: str) -> str:
        for default, port in self.filter_ports.items():
            text = re.sub(rf"(127\.0\.0\.1\]?):{default}\b", rf"\g<1>:{port}", text)
        text = text.replace(f"127.0.0.1:{MTA_STS_PORT}:", f"127.0.0.1:{self.mta_sts_port}:")
        for service, port in self.ports.items():
            text = re.sub(rf"(?m)^{service}(\s+)inet", rf"127.0.0.1:{port}\1inet", text)
        return text

    def filtermail_config(self) -> dict:
        fp = self.filter_ports
        return {
            "outgoing": {"listen": f"tcp:{fp[10080]}:interface=127.0.0.1",
                         "reinject": f"tcp:127.0.0.1:{fp[10025]}"},
            "incoming": {"listen": f"tcp:{fp[10081]}:interface=127.0.0.1",
                         "reinject": f"tcp:127.0.0.1:{fp[10026]}"},
            "dkim": {"verify": True, "nameservers": [f"{self.dns_host}:{self.dns_port}"]},
        }

    def prepare_site(self) -> None:
        """The instance's own queue, data, log and certificate, before setup checks it."""
        for d in (self.dir, self.spool, self.data):
            d.mkdir(parents=True, exist_ok=True)
        postfix = pwd.getpwnam("postfix")
        os.chown(self.data, postfix.pw_uid, postfix.pw_gid)
        self.make_tls_certificate()
        self.postconf("-e", f"queue_directory={self.spool}", f"data_directory={self.data}",
                      "inet_interfaces=127.0.0.1", "inet_protocols=ipv4",
                      f"myhostname=mx.{self.relay.mail_domain}",
                      f"maillog_file={self.dir}/postfix.log",
                      f"maillog_file_prefixes={self.dir}", "alias_maps=", "alias_database=",
                      f"smtpd_tls_cert_file={self.dir}/cert.pem",
                      f"smtpd_tls_key_file={self.dir}/key.pem")

    def after_setup(self) -> None:
        """Loopback ports, no chroot; outside mail parked on a closed port, or
        delivered by MX to the test's "remote" servers (`outside`)."""
        (self.etc / "master.cf").write_text(self.master_cf())
        maps = self.postconf("-h", "smtp_tls_policy_maps").strip()
        self.postconf("-e", f"smtp_tls_policy_maps={self.replace_ports(maps)}",
                      "bounce_queue_lifetime=0")
        if self.outside:  # their certificates come from the test CA (and the system's)
            self.postconf("-e", f"smtp_tls_CAfile={self.outside[1]}", "smtp_tls_loglevel=1")
        else:
            self.postconf("-e", "relayhost=[127.0.0.1]:9", "smtp_dns_support_level=disabled")
        self.write_mta_sts_config()
        # Dovecot puts its sockets into the queue's private/ (`postfix start` makes the rest)
        private = self.spool / "private"
        private.mkdir(parents=True, exist_ok=True)
        postfix = pwd.getpwnam("postfix")
        os.chown(private, postfix.pw_uid, postfix.pw_gid)
        private.chmod(0o700)
        self.publish({f"{SELECTOR}._domainkey.{self.relay.mail_domain}":
                      dkim_value(str(self.dkim_key))})

    def write_mta_sts_config(self) -> None:
        """Debian's mta-sts-daemon.yml, on the instance's port with its own cache."""
        cache = self.dir / "mta-sts"
        cache.mkdir(exist_ok=True)
        shutil.chown(cache, "_mta-sts", "_mta-sts")
        (self.dir / "mta-sts-daemon.yml").write_text(f"""host: 127.0.0.1
port: {self.mta_sts_port}
cache:
  type: sqlite
  options:
    filename: "{cache}/cache.db"
default_zone:
  strict_testing: false
  timeout: 4
""")

    def master_cf(self) -> str:
        lines = []
        for line in (self.etc / "master.cf").read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace():  # -o/argument lines of the previous service
                if lines and lines[-1] is not None:
                    lines.append(line)
                continue
            if DROPPED.match(line):
                lines.append(None)
                continue
            fields = line.split()
            fields[4] = "n"  # no chroot: the instance's queue has no chroot files
            lines.append("  ".join(fields))
        text = "\n".join(l for l in lines if l is not None) + "\n"
        return self.replace_ports(text)

    def make_tls_certificate(self) -> None:
        if (self.dir / "cert.pem").exists():
            return
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", self.dir / "key.pem", "-out", self.dir / "cert.pem",
                        "-days", "30", "-subj", f"/CN=mx.{self.relay.mail_domain}"],
                       check=True, capture_output=True)

    def publish(self, records: dict) -> None:
        """Add TXT records to the zone the DNS server serves (read per query)."""
        zone = json.loads(self.zone.read_text()) if self.zone.exists() else {}
        zone.update(records)
        self.zone.write_text(json.dumps(zone))
        self.zone.chmod(0o644)

    # -- processes ---------------------------------------------------------
    def postfix(self, *args, check=True):
        return subprocess.run(["postfix", "-c", str(self.etc), *args], capture_output=True,
                              text=True, timeout=60, check=check)

    def postconf(self, *args):
        return subprocess.run(["postconf", "-c", str(self.etc), *args], capture_output=True,
                              text=True, timeout=60, check=True).stdout

    def start_dns(self):
        cmd = [sys.executable, str(REPO / "scripts/local_dns.py"), "--address", self.dns_host,
               "--port", str(self.dns_port), "--zone", str(self.zone)]
        proc = self.relay.start_process("dns", cmd)
        self.relay.wait_port(self.dns_port, "dns server", proc, host=self.dns_host)

    def with_outside_dns(self, cmd, user=None) -> list:
        """`cmd` (as `user`) in a private mount namespace where /etc/resolv.conf
        names the test's DNS server; without `outside`, `cmd` as it is."""
        drop = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"] if user else []
        if not self.outside:
            return drop + list(cmd)
        resolv = self.dir / "resolv.conf"
        resolv.write_text(f"nameserver {self.dns_host}\noptions timeout:2 attempts:2\n")
        resolv.chmod(0o644)
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv), *drop, *cmd]

    def start_mta_sts_resolver(self):
        cmd = ["mta-sts-daemon", "--config", str(self.dir / "mta-sts-daemon.yml"),
               "--verbosity", "info"]
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["HOME"] = str(self.dir / "mta-sts")  # its own, as the _mta-sts user has
        if self.outside:  # policies are fetched over HTTPS from servers of the test CA
            env["SSL_CERT_FILE"] = str(self.outside[1])
        proc = self.relay.start_process("mta-sts", self.with_outside_dns(cmd, "_mta-sts"),
                                        env=env)
        self.relay.wait_port(self.mta_sts_port, "mta-sts-daemon", proc)

    def start_filtermail(self, direction: str):
        port = self.filter_ports[10080 if direction == "outgoing" else 10081]
        cmd = [str(BIN / "chatmail-filtermail"), "--config", str(self.relay.config_path),
               "--log-level", "debug", direction]
        proc = self.relay.start_process(f"filtermail-{direction}", cmd, user="vmail")
        self.relay.wait_port(port, f"filtermail {direction}", proc)
        return proc

    def start_postfix(self):
        cmd = self.with_outside_dns(["postfix", "-c", str(self.etc), "start"])
        subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
        self.relay.wait_port(self.ports["submission"], "postfix")

    def stop(self) -> None:
        if (self.spool / "pid" / "master.pid").exists():
            self.postfix("stop", check=False)

    def log(self) -> str:
        path = self.dir / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""
