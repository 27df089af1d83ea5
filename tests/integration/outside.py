"""The world outside the relay, on loopback, for test_privacy.py.

Remote MXs are real SMTP servers (tests/smtpsink.py) on port 25 of addresses
of this run's own loopback /24, each with its own certificate; MTA-STS
policies are served over HTTPS on port 443 of that /24; `outside_zone()` is
what the relay's DNS server (scripts/local_dns.py, on address .1 port 53)
answers for them: MX, A, and the `_mta-sts` TXT records.
"""

import http.server
import random
import ssl
import threading

from ..smtpsink import SMTPSink

NET = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}"  # this run's loopback /24
# remote domain -> (its MX's last address byte, its certificate: "ca" for its own
# name, "self" self-signed, "wrong" from the CA for another name, None no TLS)
REMOTES = {"good.example": (2, "ca"), "selfsigned.example": (3, "self"),
           "wrongname.example": (4, "wrong"), "cleartext.example": (5, None),
           "sts.example": (6, "ca"), "unlisted.example": (7, "ca")}
HTTPS_HOST = 8  # the policy server's address
# MTA-STS (enforce): unlisted.example's policy names an MX it does not use
POLICIES = {"sts.example": "mx.sts.example", "unlisted.example": "mx.sts.example"}


def ip(host: int) -> str:
    return f"{NET}.{host}"


def server_context(cert, key) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def mx_certificate(ca, mx, kind):
    return {"ca": lambda: ca.issue(mx), "self": lambda: ca.self_signed(mx),
            "wrong": lambda: ca.issue(f"not-{mx}"), None: lambda: None}[kind]()


class _PolicyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        domain = self.headers.get("Host", "").split(":")[0].removeprefix("mta-sts.")
        if self.path != "/.well-known/mta-sts.txt" or domain not in POLICIES:
            return self.send_error(404)
        body = (f"version: STSv1\r\nmode: enforce\r\nmx: {POLICIES[domain]}\r\n"
                "max_age: 86400\r\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_policy_server(ca):
    cert, key = ca.issue(*[f"mta-sts.{d}" for d in POLICIES])
    server = http.server.ThreadingHTTPServer((ip(HTTPS_HOST), 443), _PolicyHandler)
    server.socket = server_context(cert, key).wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def outside_zone() -> dict:
    zone = {}
    for domain, (host, _) in REMOTES.items():
        zone[domain] = {"MX": [[10, f"mx.{domain}"]]}
        zone[f"mx.{domain}"] = {"A": [ip(host)]}
    for domain in POLICIES:
        zone[f"_mta-sts.{domain}"] = "v=STSv1; id=20261129T0700"
        zone[f"mta-sts.{domain}"] = {"A": [ip(HTTPS_HOST)]}
    return zone




class RemoteServers:
    """Every remote MX of REMOTES (`sinks`: domain -> SMTPSink) and the policy server."""

    def __init__(self, ca):
        self.sinks = {}
        for domain, (host, kind) in REMOTES.items():
            cert = mx_certificate(ca, f"mx.{domain}", kind)
            tls = server_context(*cert) if cert else None
            self.sinks[domain] = SMTPSink(ip(host), 25, tls=tls).start()
        self.policies = start_policy_server(ca)

    def stop(self):
        self.policies.shutdown()
        self.policies.server_close()
        for sink in self.sinks.values():
            sink.stop()
