"""The mail part of the local relay: Debian's Postfix, filtermail, a DNS server.

Renders conf/postfix/ (before-queue `master.cf` or `master-after-queue.cf`)
and 91-chatmail-postfix.conf of the relay's Dovecot snippet set (conf/dovecot/
or conf/dovecot24/) into the relay directory,
replacing only install paths and ports:

    /etc/postfix/        -> <dir>/postfix/etc/      (Postfix's config_directory)
    /var/spool/postfix   -> <dir>/postfix/spool     (its queue_directory)
    smtp/submission/submissions inet, 127.0.0.1:100xx -> free loopback ports

Postfix runs as its own instance (`postfix -c <dir>/postfix/etc start`) with
its own queue, data directory and log file; the system's /etc/postfix and
any system instance are never touched. Debian's postfix-mta-sts-resolver
runs beside it on a free loopback port (main.cf's socketmap). Mail to other
domains goes to a closed loopback port and stays deferred. filtermail runs
as vmail with a fresh DKIM key whose TXT record a twisted.names server on
loopback serves (scripts/local_dns.py), so incoming DKIM verification works
offline.

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

REPO = Path(__file__).resolve().parent.parent
# resolved: .venv is a link to a venv that vmail can enter (scripts/bootstrap)
BIN = Path(sys.executable).parent.resolve()
CONF = REPO / "conf"
SELECTOR = "dkim"
FILTER_PORTS = (10080, 10081, 10025, 10026)
MTA_STS_PORT = 8461
MAPS = ("chatmail-login-map", "submission_header_cleanup", "delivery_header_cleanup",
        "tls_policy")
# master.cf.dist services that ours replace, and those that need packages we lack
DROPPED = re.compile(r"^(smtp\s+inet|submissions?\s+inet|maildrop|uucp|ifmail|bsmtp|"
                     r"scalemail-backend|mailman)\b")


class PostfixPart:
    def __init__(self, relay, mode: str, free_port, outside=None):
        self.relay = relay
        self.mode = mode
        self.outside = outside  # (DNS address, CA file) or None
        self.dir = relay.base / "postfix"
        self.etc = self.dir / "etc"
        self.spool = self.dir / "spool"
        self.data = self.dir / "lib"
        self.ports = {name: free_port() for name in ("smtp", "submission", "submissions")}
        self.filter_ports = {p: free_port() for p in FILTER_PORTS}
        self.mta_sts_port = free_port()
        self.dns_host, self.dns_port = (outside[0], 53) if outside else ("127.0.0.1", free_port())
        self.zone = relay.base / "dns.json"
        self.dkim_key = relay.base / "dkim" / f"{SELECTOR}.pem"

    # -- rendering ---------------------------------------------------------
    def replace_paths_and_ports(self, text: str) -> str:
        text = (text.replace("/etc/postfix/", f"{self.etc}/")
                .replace("/var/spool/postfix", str(self.spool)))
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
            "dkim": {"verify": True, "nameservers": [f"{self.dns_host}:{self.dns_port}"],
                     "sign": {"selector": SELECTOR, "key_file": str(self.dkim_key)}},
        }

    def render(self) -> None:
        for d in (self.dir, self.etc, self.spool, self.data):
            d.mkdir(parents=True, exist_ok=True)
        postfix = pwd.getpwnam("postfix")
        os.chown(self.data, postfix.pw_uid, postfix.pw_gid)
        (self.etc / "main.cf").write_text(self.main_cf())
        (self.etc / "master.cf").write_text(self.master_cf())
        for name in MAPS:
            shutil.copy(CONF / "postfix" / name, self.etc / name)
        self.write_mta_sts_config()
        (self.relay.dovecot_dir / "91-chatmail-postfix.conf").write_text(
            self.replace_paths_and_ports(self.relay.render_conf("91-chatmail-postfix.conf")))
        self.make_tls_certificate()
        self.make_dkim_key()
        # creates the queue's subdirectories, where Dovecot puts its sockets
        self.postfix("check")

    def main_cf(self) -> str:
        base = f"""# local relay: a separate Postfix instance on loopback
compatibility_level = 3.6
queue_directory = {self.spool}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.{self.relay.mail_domain}
maillog_file = {self.dir}/postfix.log
maillog_file_prefixes = {self.dir}
alias_maps =
alias_database =
smtpd_tls_cert_file = {self.dir}/cert.pem
smtpd_tls_key_file = {self.dir}/key.pem
bounce_queue_lifetime = 0
"""
        if self.outside:
            # other domains: by MX from the test's DNS; their certificates
            # come from the test CA (conf/ adds the system's CAs)
            base += f"smtp_tls_CAfile = {self.outside[1]}\nsmtp_tls_loglevel = 1\n"
        else:
            base += ("# other domains: a closed port, outside mail waits in the deferred queue\n"
                     "relayhost = [127.0.0.1]:9\nsmtp_dns_support_level = disabled\n")
        return base + self.replace_paths_and_ports((CONF / "postfix/main.cf").read_text())

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
        stock = []
        for line in Path("/usr/share/postfix/master.cf.dist").read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace():  # -o/argument lines of the previous service
                if stock and stock[-1] is not None:
                    stock.append(line)
                continue
            if DROPPED.match(line):
                stock.append(None)
                continue
            fields = line.split()
            fields[4] = "n"  # no chroot: the instance's queue has no chroot files
            stock.append("  ".join(fields))
        name = "master.cf" if self.mode == "before" else "master-after-queue.cf"
        ours = self.replace_paths_and_ports((CONF / "postfix" / name).read_text())
        return "\n".join(l for l in stock if l is not None) + "\n" + ours

    def make_tls_certificate(self) -> None:
        if (self.dir / "cert.pem").exists():
            return
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", self.dir / "key.pem", "-out", self.dir / "cert.pem",
                        "-days", "30", "-subj", f"/CN=mx.{self.relay.mail_domain}"],
                       check=True, capture_output=True)

    def make_dkim_key(self) -> None:
        from dkim_keys import make_dkim_key  # scripts/, next to this file

        self.dkim_key.parent.mkdir(exist_ok=True)
        _, record = make_dkim_key(self.dkim_key.parent, "rsa", SELECTOR)
        vmail = self.relay.vmail
        os.chown(self.dkim_key, vmail.pw_uid, vmail.pw_gid)
        self.dkim_key.chmod(0o600)
        self.publish({f"{SELECTOR}._domainkey.{self.relay.mail_domain}": record.decode()})

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
