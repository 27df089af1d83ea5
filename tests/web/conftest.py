"""The web front in memory: its Site fed raw HTTP bytes over a StringTransport."""

from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from chatmail_services.core.admission import Admission
from chatmail_services.core.store import open_store
from chatmail_services.web.http import Front, make_site
from chatmail_services.web.pages import Pages
from chatmail_services.web.policy import NewAccounts, Throttle

TEMPLATES = Path(__file__).resolve().parents[2] / "conf" / "web"


class FixedProbe:
    def load_1m(self):
        return 0.1

    def available_memory(self):
        return 8 << 30

    def free_disk(self):
        return 100 << 30


class Web:
    """One front on a files store; `mode` is what the front's mode cache says."""

    def __init__(self, config, pool, hasher=lambda pw: "{PLAIN}" + pw, reactor=None,
                 pages=None):
        self.config = config
        store = open_store(config)
        self.store = store.accounts  # the roles the front is handed
        self.registration = store.registration
        self.admission = Admission(config, self.registration, FixedProbe())
        self.accounts = NewAccounts(config, self.store, self.registration, self.admission,
                                    hasher=hasher, clock=lambda: 1_700_000_000)
        self.mode = "open"
        self.now = 0.0
        self.throttle = Throttle(config.web.new_per_minute, config.web.new_burst,
                                 clock=lambda: self.now)
        front = Front(pages or Pages(config), lambda: self.mode, self.accounts, pool,
                      self.throttle, config.web.behind_proxy)
        self.site = make_site(front, reactor)

    def raw(self, data: bytes, client="192.0.2.1", chunks=None):
        """Send raw request bytes (in `chunks` pieces if given); the bytes answered."""
        proto = self.site.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", client, 40000))
        proto.makeConnection(transport)
        pieces = [data] if chunks is None else [data[i:i + chunks]
                                                 for i in range(0, len(data), chunks)]
        for piece in pieces:
            if transport.disconnecting:
                break
            proto.dataReceived(piece)
        return transport.value(), transport.disconnecting

    def request(self, method, path, body=b"", headers=(), client="192.0.2.1"):
        head = [f"{method} {path} HTTP/1.1", "Host: chat.example.org",
                f"Content-Length: {len(body)}", "Connection: close", *headers]
        answer, _ = self.raw(("\r\n".join(head) + "\r\n\r\n").encode() + body, client)
        status = int(answer.split(b" ", 2)[1])
        head, _, payload = answer.partition(b"\r\n\r\n")
        return status, head.decode(), payload


@pytest.fixture
def make_web(make_config, inline_pool):
    def make(**web):
        config = make_config(web={"templates_dir": str(TEMPLATES), **web},
                             doveauth={"max_load_1m": 100})
        return Web(config, inline_pool)

    return make


@pytest.fixture
def web(make_web):
    return make_web()
