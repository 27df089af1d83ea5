"""A tiny real SMTP server on loopback that plays Postfix's reinject service.

It answers 250 to every command (354 to DATA), keeps each message with its
envelope, and serves every connection in its own thread until QUIT, so a
filter's pooled reinject connections work as against Postfix. Nothing is
mocked on the filter's side: it connects over TCP as in production.
"""

import socketserver
import threading

from .redisserver import free_port


class _Session(socketserver.StreamRequestHandler):
    def handle(self):
        self.reply(b"220 sink.test ESMTP")
        mail_from, rcpts = None, []
        for line in self.rfile:
            verb = line[:4].upper()
            if verb == b"QUIT":
                return self.reply(b"221 Bye")
            if verb == b"MAIL":
                mail_from, rcpts = line[10:].strip(b"<> \r\n").decode(), []
            elif verb == b"RCPT":
                rcpts.append(line[8:].strip(b"<> \r\n").decode())
            elif verb == b"DATA":
                self.reply(b"354 go ahead")
                self.server.sink.received.append((mail_from, rcpts, self.read_data()))
            self.reply(b"250 sink.test")

    def read_data(self) -> bytes:
        lines = []
        for line in self.rfile:
            if line == b".\r\n":
                break
            lines.append(line)
        return b"".join(lines)

    def reply(self, text: bytes):
        self.wfile.write(text + b"\r\n")


class SMTPSink:
    def __init__(self):
        self.port = free_port()
        self.received = []
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), _Session)
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
