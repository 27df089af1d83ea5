"""Two outgoing filtermail processes (console scripts) on one real redis-server.

Each "host" runs `chatmail-filtermail outgoing` with its own listener and the
same `storage` URL; both reinject into one real SMTP sink (tests/smtpsink.py).
smtplib plays Postfix's filter client. The send rate limit must be one limit
across both hosts, fail closed with 451 while Redis is down, and work again
when Redis is back, without restarting the daemons.
"""

import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ..redisserver import RedisServer, free_port
from ..smtpsink import SMTPSink

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
DOMAIN = "chat.example.org"
OUTSIDE = "carol@example.net"
BURST = 3


class Filter:
    """One host's outgoing filtermail on loopback."""

    def __init__(self, base: Path, name: str, storage: str, sink_port: int):
        self.dir = base / name
        self.dir.mkdir()
        self.port = free_port()
        config = self.dir / "chatmail.yaml"
        config.write_text(yaml.safe_dump({
            "mail_domain": DOMAIN, "mailboxes_dir": str(self.dir / "mail"),
            "storage": storage, "redis": {"socket_timeout": 1},
            "filtermail": {
                "outgoing": {"listen": f"tcp:{self.port}:interface=127.0.0.1",
                             "reinject": f"tcp:127.0.0.1:{sink_port}"},
                "dkim": {"sign": None},  # this test is about the rate limit
                "max_user_send_per_minute": 1, "max_user_send_burst_size": BURST}}))
        self.logfile = self.dir / "filtermail.log"
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "chatmail-filtermail"), "--config", str(config), "outgoing"],
                stdout=log, stderr=log)
        self._wait_listening()

    def _wait_listening(self):
        deadline = time.monotonic() + 20
        while True:
            assert self.proc.poll() is None, self.log()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "filtermail did not listen"
                time.sleep(0.05)

    def log(self) -> str:
        return self.logfile.read_text()

    def send(self, sender: str, message: bytes):
        """The reply to MAIL FROM, or 250 after the message was accepted."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.ehlo("postfix.test")
            code, text = client.mail(sender)
            if code != 250:
                return code, text.decode()
            client.rcpt(OUTSIDE)
            code, text = client.data(message)
            return code, text.decode()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def sink():
    s = SMTPSink().start()
    yield s
    s.stop()


@pytest.fixture
def own_redis():
    server = RedisServer(durable=True).start()
    yield server
    server.stop()


@pytest.fixture
def two_hosts(tmp_path, own_redis, sink):
    hosts = [Filter(tmp_path, f"host{i}", own_redis.url, sink.port) for i in range(2)]
    yield hosts
    for host in hosts:
        host.stop()


@pytest.fixture(scope="module")
def message():
    from ..filtermail.conftest import _pgpy_key, pgpy_encrypt
    from pgpy.constants import EllipticCurveOID, PubKeyAlgorithm

    key = _pgpy_key("ecc", (PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519),
                    (PubKeyAlgorithm.ECDH, EllipticCurveOID.Curve25519))
    armored = pgpy_encrypt("hello", [key]).decode()
    template = (Path(__file__).parents[1] / "filtermail" / "data" / "encrypted.eml").read_text()

    def make(sender):
        text = template.format(from_addr=sender, to_addr=OUTSIDE, armored=armored)
        return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    return make


def test_a_senders_burst_is_shared_by_both_hosts(two_hosts, sink, message, own_redis):
    a, b = two_hosts
    alice, bob = f"alice1234@{DOMAIN}", f"bob123456@{DOMAIN}"
    replies = [host.send(alice, message(alice)) for host in (a, b, a, b)]
    assert [code for code, _ in replies] == [250, 250, 250, 450]
    assert "4.7.1 Rate limit exceeded" in replies[3][1] and "try again in" in replies[3][1]
    assert a.send(alice, message(alice))[0] == 450
    assert b.send(bob, message(bob))[0] == 250  # another sender, another bucket
    assert sink.senders() == [alice] * BURST + [bob]
    assert 0 < own_redis.client().pttl(f"chatmail:{DOMAIN}:rate:{alice}") <= 180_000


def test_redis_down_is_451_at_mail_from_then_recovers_without_restart(
        two_hosts, sink, message, own_redis):
    a, b = two_hosts
    alice, bob = f"alice1234@{DOMAIN}", f"bob123456@{DOMAIN}"
    for host in (a, b, a):
        assert host.send(alice, message(alice))[0] == 250
    own_redis.kill()
    for host in (a, b):
        for sender in (alice, bob, bob):
            code, text = host.send(sender, message(sender))
            assert (code, text[:5]) == (451, "4.3.0"), text
    assert sink.senders() == [alice] * BURST
    own_redis.start()
    assert b.send(alice, message(alice))[0] == 450  # its bucket survived the outage
    for host in (a, b):
        assert host.send(bob, message(bob))[0] == 250
    assert sink.senders() == [alice] * BURST + [bob] * 2
    for host in (a, b):
        log = host.log()
        assert log.count("redis store unreachable") == 1, log
        assert log.count("redis store reachable again") == 1, log
        assert host.proc.poll() is None
