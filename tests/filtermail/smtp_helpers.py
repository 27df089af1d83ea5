"""In-memory SMTP plumbing for the filtermail unit tests (no sockets, no reactor).

`Loopback` connects protocols with twisted.test.iosim and pumps bytes until
both sides are quiet; `LoopbackEndpoint` is a client endpoint that connects
to a new server protocol through it (what ReinjectPool connects to).
`SinkHandler` is the handler of a real `SMTPServer` acting as Postfix's
reinject service: it records what arrives and answers what the test says.
"""

from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.test import iosim

from chatmail_services.filtermail.server import SMTPServer
from chatmail_services.filtermail.smtp import Reply

QUEUED = Reply(250, "2.0.0 Ok: queued as 4ABCDEF")


class Loopback:
    def __init__(self):
        self.pumps = []

    def connect(self, server, client):
        pump = iosim.connect(server, iosim.FakeTransport(server, True),
                             client, iosim.FakeTransport(client, False), greet=False)
        self.pumps.append(pump)
        return pump

    def flush(self):
        for _ in range(10000):
            if not any(p.pump() for p in self.pumps):
                return
        raise AssertionError("loopback never went quiet")


class SinkHandler:
    """Records reinjected messages; `reply`, `mail_reply` set the answers."""

    def __init__(self):
        self.received = []
        self.reply = QUEUED
        self.mail_reply = None
        self.hold = False
        self.held = []

    def check_mail(self, addr, params):
        return self.mail_reply

    def check_rcpt(self, addr, params):
        return None

    def deliver(self, envelope, message):
        if self.hold:
            d = defer.Deferred()
            self.held.append(d)
            return d
        self.received.append((envelope, bytes(message)))
        return self.reply


class LoopbackEndpoint:
    """Client endpoint: each connect() reaches a fresh SMTPServer(sink)."""

    def __init__(self, loop, sink, max_size=10 << 20):
        self.loop, self.sink, self.max_size = loop, sink, max_size
        self.connections = []
        self.refuse = False

    def connect(self, factory):
        if self.refuse:
            return defer.fail(ConnectionRefusedError())
        client = factory.buildProtocol(None)
        server = SMTPServer(self.sink, "reinject.test", self.max_size)
        self.connections.append((server, client))
        self.loop.connect(server, client)
        return defer.succeed(client)
