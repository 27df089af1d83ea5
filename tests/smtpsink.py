"""A tiny real SMTP server on loopback: Postfix's reinject service, or a remote MX.

It answers 250 to every command (354 to DATA), keeps each message with its
envelope, and serves every connection in its own thread until QUIT, so a
filter's pooled reinject connections work as against Postfix. Nothing is
mocked on the client's side: it connects over TCP as in production.

With `tls` (a server SSLContext) it offers STARTTLS, as a remote MX that our
Postfix delivers to: `handshakes` counts TLS handshakes that completed,
`failed_handshakes` those the client broke off (e.g. because it did not
trust the certificate). `host` and `port` may be fixed (a remote MX listens
on port 25 of its own loopback address).
"""

import socketserver
import ssl
import threading

from .redisserver import free_port


class _Session(socketserver.StreamRequestHandler):
    def handle(self):
        try:
            self.converse()
        except ConnectionError:
            # The client hung up first (Postfix may close a TLS session right
            # after its QUIT, before our 221). A message is recorded only
            # once its DATA is complete, so a cut one is still seen missing.
            pass

    def converse(self):
        sink = self.server.sink
        self.reply(b"220 sink.test ESMTP")
        mail_from, rcpts, tls = None, [], False
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"QUIT":
                return self.reply(b"221 Bye")
            if verb == b"EHLO" and sink.tls and not tls:
                self.reply(b"250-sink.test\r\n250-8BITMIME\r\n250 STARTTLS")
                continue
            if verb == b"STAR" and sink.tls and not tls:
                self.reply(b"220 ready for TLS")
                if not self.start_tls(sink):
                    return
                tls = True
                continue
            if verb == b"MAIL":
                mail_from, rcpts = line[10:].strip(b"<> \r\n").decode(), []
            elif verb == b"RCPT":
                rcpts.append(line[8:].strip(b"<> \r\n").decode())
            elif verb == b"DATA":
                self.reply(b"354 go ahead")
                sink.received.append((mail_from, rcpts, self.read_data()))
            self.reply(b"250 sink.test")

    def start_tls(self, sink) -> bool:
        try:
            self.connection = sink.tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            sink.failed_handshakes += 1
            return False
        sink.handshakes += 1
        self.rfile = self.connection.makefile("rb")
        self.wfile = self.connection.makefile("wb", buffering=0)
        return True

    def read_data(self) -> bytes:
        lines = []
        while line := self.rfile.readline():
            if line == b".\r\n":
                break
            lines.append(line)
        return b"".join(lines)

    def reply(self, text: bytes):
        self.wfile.write(text + b"\r\n")


class SMTPSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext = None):
        self.host, self.port = host, port or free_port()
        self.tls = tls
        self.received = []
        self.handshakes = self.failed_handshakes = 0
        self.server = socketserver.ThreadingTCPServer((self.host, self.port), _Session)
        self.server.daemon_threads = True
        self.server.sink = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "SMTPSink":
        self.thread.start()
        return self

    def senders(self):
        return [mail_from for mail_from, _, _ in self.received]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
