"""A filter end to end in memory: Postfix's side -> SMTPServer(FilterHandler) -> reinject sink."""

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger

from chatmail_services.core.store import StoreError, StoreUnavailable
from chatmail_services.core.store.files import open_files
from chatmail_services.core.gcra import RateLimiter
from chatmail_services.filtermail.filter import (
    INLINE_MAX, FilterHandler, SendRateLimit, incoming_judge, incoming_recipients,
    outgoing_judge,
)
from chatmail_services.filtermail.reinject import ReinjectPool
from chatmail_services.filtermail.server import SMTPServer
from chatmail_services.filtermail.subject import minimise_subject

from ..conftest import RecordingPool
from .smtp_helpers import QUEUED, LoopbackEndpoint, Loopback, SinkHandler

ALICE, BOB, OUTSIDE = "alice@chat.example.org", "bob@chat.example.org", "carol@example.net"
TEMPFAIL = "451 4.3.0 Error: queue file write error, try again later"


@pytest.fixture
def env(make_config, inline_pool, tmp_path):
    class Env:
        loop = Loopback()
        sink = SinkHandler()
        clock = Clock()
        config = make_config()
        endpoint = LoopbackEndpoint(loop, sink)
        reinject = ReinjectPool(clock, endpoint, "filter.test", timeout=60)
        store = open_files(tmp_path / "mail", "chat.example.org")

        def server(self, direction, **parts):
            if direction == "outgoing":
                parts.setdefault("judge", outgoing_judge(self.config))
            else:
                parts.setdefault("judge", incoming_judge(self.config, self.store.accounts))
                parts.setdefault("recipients", incoming_recipients(self.config))
            handler = FilterHandler(direction, pool=parts.pop("pool", inline_pool),
                                    reinject=self.reinject, clock=self.clock, **parts)
            proto = SMTPServer(handler, "filter.test", self.config.max_message_size)
            proto.makeConnection(StringTransport())
            proto.dataReceived(b"EHLO postfix.test\r\n")
            proto.transport.clear()
            return proto

        def send(self, proto, message, mail_from=ALICE, rcpts=(OUTSIDE,)) -> str:
            lines = [f"MAIL FROM:<{mail_from}>"] + [f"RCPT TO:<{r}>" for r in rcpts]
            stuffed = message.replace(b"\r\n.", b"\r\n..")
            proto.dataReceived("\r\n".join(lines + ["DATA"]).encode() + b"\r\n"
                               + stuffed + b".\r\n")
            self.loop.flush()
            out = proto.transport.value().decode().splitlines()
            proto.transport.clear()
            return out[-1]

    return Env()


@pytest.fixture
def eml(make_eml, armored):
    def make(template, from_addr=ALICE, to_addr=OUTSIDE):
        return make_eml(template, from_addr=from_addr, to_addr=to_addr,
                        armored=armored.decode(), step="vc-request",
                        text="Secure-Join: vc-request", from_domain="mx.example.net")
    return make


def test_encrypted_mail_is_reinjected_byte_for_byte_and_250_passes_postfix_reply(env, eml):
    message = eml("encrypted") + b".dot line\r\n"
    assert env.send(env.server("outgoing"), message) == f"250 {QUEUED.text}"
    (envelope, got), = env.sink.received
    assert got == message and envelope.rcpt_tos == [OUTSIDE]


def test_cleartext_is_refused_523_and_not_reinjected(env, eml):
    reply = env.send(env.server("outgoing"), eml("plain"))
    assert reply == "523 Encryption Needed: Invalid Unencrypted Mail"
    assert env.sink.received == [] and env.endpoint.connections == []


def test_forged_from_is_refused(env, eml):
    reply = env.send(env.server("outgoing"), eml("encrypted", from_addr=BOB))
    assert reply == "550 5.7.1 From header does not match envelope sender"


def test_reinject_refusal_or_absence_is_451_never_250(env, eml):
    proto = env.server("outgoing")
    env.sink.reply = env.sink.reply.__class__(554, "5.7.1 refused by Postfix")
    assert env.send(proto, eml("encrypted")) == TEMPFAIL
    env.endpoint.refuse = True
    assert env.send(proto, eml("encrypted")) == TEMPFAIL
    env.endpoint.refuse = False
    env.sink.reply = QUEUED
    assert env.send(proto, eml("encrypted")) == f"250 {QUEUED.text}"


def test_rate_limit_refuses_mail_from_with_retry_time(env, eml):
    proto = env.server("outgoing", limiter=RateLimiter(60, 2))
    for _ in range(2):
        assert env.send(proto, eml("encrypted")).startswith("250")
    proto.dataReceived(f"MAIL FROM:<{ALICE}>\r\n".encode())
    assert proto.transport.value() == (
        b"450 4.7.1 Rate limit exceeded: too much mail from this sender, "
        b"try again in 1 second\r\n")
    proto.transport.clear()
    env.clock.advance(1)
    assert env.send(proto, eml("encrypted")).startswith("250")


def test_rate_limit_counts_on_the_store(env, eml):
    proto = env.server("outgoing", limiter=SendRateLimit(env.store.send_rate, 60, 2))
    for _ in range(2):
        assert env.send(proto, eml("encrypted")).startswith("250")
    proto.dataReceived(f"MAIL FROM:<{ALICE}>\r\n".encode())
    assert proto.transport.value().startswith(b"450 4.7.1 Rate limit exceeded")
    proto.transport.clear()
    assert len(env.sink.received) == 2
    env.clock.advance(1)
    assert env.send(proto, eml("encrypted")).startswith("250")


@pytest.mark.parametrize("blocking", [True, False])  # asked in the pool, or at once
@pytest.mark.parametrize("error", [StoreUnavailable("redis down"), StoreError("odd"),
                                   RuntimeError("bug")])
def test_a_store_that_cannot_count_makes_mail_from_451_and_nothing_passes(
        env, eml, error, blocking):
    class DownStore:
        def check_send_rate(self, sender, now, per_minute, burst):
            raise error

    DownStore.blocking = blocking

    proto = env.server("outgoing", limiter=SendRateLimit(DownStore(), 60, 2))
    proto.dataReceived(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<{OUTSIDE}>\r\n".encode())
    assert proto.transport.value().decode().splitlines() == [
        "451 4.3.0 Error: cannot check the sender's send rate now, try again later",
        "503 5.5.1 Error: need MAIL command"]
    assert env.sink.received == []


def test_small_outgoing_mail_skips_the_pool_and_big_mail_takes_it(env, eml):
    """Under INLINE_MAX, the rate check (files store: memory), the parse, the
    judge and the Subject's replacement run at once; a bigger message is
    parsed, judged and rewritten in the pool. Both arrive unchanged (their
    Subject is already hidden)."""
    pool = RecordingPool()
    limiter = SendRateLimit(env.store.send_rate, 60, 100)
    proto = env.server("outgoing", pool=pool, limiter=limiter,
                       rewrite=minimise_subject, inline_max=INLINE_MAX)
    small = eml("encrypted")
    big = small + b"".join(b"%076d\r\n" % i for i in range(INLINE_MAX // 78 + 1))
    assert len(small) < INLINE_MAX <= len(big)
    assert env.send(proto, small) == f"250 {QUEUED.text}"
    assert pool.ran == []
    assert env.send(proto, big) == f"250 {QUEUED.text}"
    assert pool.ran == ["_parse_and_judge", "minimise_subject"]
    assert [got for _, got in env.sink.received] == [small, big]


def test_incoming_cleartext_refused_only_for_accounts_that_enforce_e2ee(env, eml):
    proto = env.server("incoming")
    (env.store.accounts.layout.root / BOB).mkdir(parents=True)
    assert env.send(proto, eml("plain", OUTSIDE, BOB), OUTSIDE, [BOB]).startswith("250")
    (env.store.accounts.layout.root / BOB / "enforceE2EEincoming").touch()
    reply = env.send(proto, eml("plain", OUTSIDE, BOB), OUTSIDE, [BOB])
    assert reply == "523 Encryption Needed: Invalid Unencrypted Mail"
    assert env.send(proto, eml("encrypted", OUTSIDE, BOB), OUTSIDE, [BOB]).startswith("250")


@pytest.mark.parametrize("error, logged", [
    (OSError("disk on fire"), 1),  # a bug in the store: a traceback
    (StoreError("odd answer"), 1),  # one line
    (StoreUnavailable("redis down"), 0),  # the store logged the outage once
])
def test_incoming_store_failure_is_451_logged_at_most_once(env, eml, error, logged):
    class BrokenStore:
        def enforces_e2ee_incoming(self, addr):
            raise error

    proto = env.server("incoming", judge=incoming_judge(env.config, BrokenStore()))
    events = []
    proto.log = Logger(observer=events.append)
    assert env.send(proto, eml("plain", OUTSIDE, BOB), OUTSIDE, [BOB]) == TEMPFAIL
    assert env.sink.received == [] and len(events) == logged


def test_outgoing_subject_becomes_hidden_before_the_signature_is_made(env, eml, tmp_path):
    import dkim

    from chatmail_services.core.config import DkimSign
    from chatmail_services.filtermail.dkimcheck import DkimSigner
    from chatmail_services.filtermail.subject import minimise_subject
    from dkim_keys import make_dkim_key  # scripts/

    key, record = make_dkim_key(tmp_path, "ed25519", "s")
    signer = DkimSigner.from_config("chat.example.org", DkimSign("s", str(key)))
    proto = env.server("outgoing", signer=signer, rewrite=minimise_subject)
    message = eml("encrypted").replace(b"Subject: [...]", b"Subject: My secret subject")
    assert env.send(proto, message).startswith("250")
    (_, got), = env.sink.received
    assert b"My secret subject" not in got and b"\r\nSubject: [...]\r\n" in got
    assert got.endswith(message.split(b"\r\n\r\n", 1)[1])  # the body as sent
    assert dkim.verify(got, dnsfunc=lambda name, timeout=5: record)


def test_a_big_message_asks_for_a_trim_and_a_small_one_does_not(env, eml):
    asked = []
    proto = env.server("outgoing", after_big=lambda: asked.append(True))
    assert env.send(proto, eml("encrypted")).startswith("250")
    assert asked == []
    big = eml("encrypted").replace(b"\r\n\r\n", b"\r\nX-Pad: " + b"p" * (1 << 20) + b"\r\n\r\n", 1)
    env.send(proto, big)
    assert asked == [True]


@pytest.mark.parametrize("localpart", ["a" * 250, "b" * 300, "new\\nline", "\udcff" * 3])
def test_incoming_recipient_that_can_never_be_a_mailbox_is_refused_for_good_at_rcpt(
        env, eml, localpart, monkeypatch):
    env.store.accounts.layout.root.mkdir(parents=True, exist_ok=True)  # as on a relay
    events = []
    monkeypatch.setattr(SMTPServer, "log", Logger(observer=events.append))
    proto = env.server("incoming", verifier=None)
    rcpt = f"{localpart}@chat.example.org".encode("utf-8", "surrogateescape")
    proto.dataReceived(b"MAIL FROM:<carol@example.net>\r\nRCPT TO:<" + rcpt + b">\r\n")
    out = proto.transport.value().decode("utf-8", "replace").splitlines()
    assert out[-1].startswith("550 5.1.1 Recipient address rejected: ")
    assert localpart not in out[-1]
    proto.transport.clear()
    # the message still goes to the other recipient, without the refused one
    message = eml("encrypted", to_addr=BOB).replace(b"\r\n.", b"\r\n..")
    proto.dataReceived(f"RCPT TO:<{BOB}>\r\nDATA\r\n".encode() + message + b".\r\n")
    env.loop.flush()
    assert proto.transport.value().decode().splitlines()[-1] == f"250 {QUEUED.text}"
    (envelope, _), = env.sink.received
    assert envelope.rcpt_tos == [BOB]
    assert events == []
