"""A local stand-in for notifications.delta.chat: an HTTPS server that records POSTs.

The local relay (scripts/relay-up) and the integration tests point
`metadata.notify_url` here, so push notifications can be watched without
leaving the machine. It serves TLS with a certificate from its own test CA
(made with the `cryptography` package; the relay trusts it through
`metadata.notify_ca_file`), answers every POST with `default_status` (or a
per-token status), and records token, arrival time and status; as a command
it also appends one line per POST to a log file an operator can `tail -f`.

Not installed with the package: a development and test tool.
"""

import argparse
import datetime
import http.server
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path


def make_test_ca(directory: Path):
    """Write ca.pem, cert.pem, key.pem (for localhost and 127.0.0.1) once; return paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    directory = Path(directory)
    paths = tuple(directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    if all(p.exists() for p in paths):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, issuer, key, sign_key, ca, extra=()):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=3650))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             # key identifiers: Python 3.13 verifies strictly (VERIFY_X509_STRICT)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                            critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 sign_key.public_key()), critical=False))
        if ca:  # strict verification also wants a CA's key usage
            b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                              False, False), critical=True)
        for ext in extra:
            b = b.add_extension(ext, critical=False)
        return b.sign(sign_key, hashes.SHA256())

    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert(name("chatmail test CA"), name("chatmail test CA"), ca_key, ca_key, True)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    leaf = cert(name("localhost"), ca.subject, key, ca_key, False, [san])
    pem = serialization.Encoding.PEM
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(leaf.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass(frozen=True)
class Post:
    token: str
    at: float  # time.time() when the request arrived
    status: int


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real service

    def do_POST(self):
        sink = self.server.sink
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        token = body.decode("utf-8", "replace")
        status = sink.status_for.get(token, sink.default_status)
        sink.record(Post(token, time.time(), status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    """Many connections at once, as the real service takes them: a listen
    backlog of 128 (socketserver's 5 drops the SYNs of a notifier opening
    its connections together, each retried a second later) and the TLS
    handshake in each connection's own thread, not in the accept loop."""

    request_queue_size = 128
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address, handler, context):
        self.context = context
        super().__init__(address, handler)

    def get_request(self):
        sock, address = self.socket.accept()
        self.sink.connections += 1
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), address

    def handle_error(self, request, client_address):
        # A client that refused our certificate or went away mid-handshake:
        # no traceback on stderr (the accept loop used to drop these quietly).
        if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
            super().handle_error(request, client_address)


class NotifySink:
    handler = _Handler  # a test may answer differently

    def __init__(self, port: int, ca_dir: Path, log_file=None):
        self.port = port
        self.ca_file, self.cert_file, self.key_file = make_test_ca(ca_dir)
        self.log_file = log_file
        self.default_status = 200
        self.status_for = {}
        self.posts = []
        self.connections = 0  # accepted so far
        self.cond = threading.Condition()
        self.server = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/notify"

    def start(self) -> "NotifySink":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        server = _Server(("127.0.0.1", self.port), self.handler, context)
        server.sink = self
        self.server = server
        # a short poll: stop() returns within 50 ms, not 0.5 s
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def record(self, post: Post) -> None:
        with self.cond:
            self.posts.append(post)
            self.cond.notify_all()
        if self.log_file:
            stamp = datetime.datetime.fromtimestamp(post.at).isoformat(timespec="milliseconds")
            with open(self.log_file, "a") as f:
                f.write(f"{stamp} POST /notify {post.status} token={post.token}\n")

    def wait_for(self, check, timeout: float = 30.0):
        """Wait until check(posts) is true; return the posts (raise on timeout)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not check(self.posts):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"sink: condition not met; got {self.posts!r}")
                self.cond.wait(left)
            return list(self.posts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="CA and certificate files")
    parser.add_argument("--log", type=Path, required=True, help="one line per POST")
    args = parser.parse_args(argv)
    NotifySink(args.port, args.dir, args.log).start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
