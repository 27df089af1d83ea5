"""doveauth over the dict wire: Dovecot's keys in, Dovecot's replies out."""

import json

import pytest
from twisted.internet.testing import StringTransport
from twisted.logger import Logger

from chatmail_services.core.dictproto import DictServerFactory
from chatmail_services.core.store.files import open_files
from chatmail_services.doveauth.dictfront import AuthDict, fields_json
from chatmail_services.doveauth.lookups import AccountLookups
from chatmail_services.doveauth.policy import AccountPolicy

from ..conftest import HeldPool
from .test_policy import FixedProbe


@pytest.fixture
def wire(make_config, inline_pool, reads):
    config = make_config()
    accounts = open_files(config.mailboxes_dir, config.mail_domain).accounts
    policy = AccountPolicy(config, accounts, FixedProbe(), reads=reads(accounts))
    proto = DictServerFactory(AuthDict(policy, inline_pool)).buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"H3\t2\t0\t\tauth\n")

    def send(line: str) -> str:
        proto.dataReceived(line.encode("utf-8", "surrogateescape") + b"\n")
        out = transport.value().decode()
        transport.clear()
        return out

    send.config = config
    send.proto = proto
    return send


def passdb_key(password, addr):
    esc = lambda s: s.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")  # noqa
    return f'Lshared/passdb/{esc(password)}"{esc(addr)}\t{addr}'


def test_passdb_lookup_creates_and_answers_json(wire, new_addr):
    addr = new_addr()
    reply = wire(passdb_key("secret-password", addr))
    assert reply.startswith("O{") and reply.endswith("\n")
    fields = json.loads(reply[1:])
    assert fields["password"].startswith("{SHA512-CRYPT}$6$")
    assert set(fields) == {"password", "home", "uid", "gid"}


def test_password_with_quotes_and_backslashes_is_unescaped(wire, new_addr):
    from passlib.hash import sha512_crypt

    addr, password = new_addr(), 'a"b\\c\'d-secret'
    fields = json.loads(wire(passdb_key(password, addr))[1:])
    assert sha512_crypt.verify(password, fields["password"][len("{SHA512-CRYPT}"):])


def test_refused_login_answers_n(wire):
    assert wire(passdb_key("secret-password", "short@chat.example.org")) == "N\n"


def test_userdb_lookup(wire, new_addr):
    addr = new_addr()
    assert wire(f"Lshared/userdb/{addr}\t{addr}") == "N\n"
    wire(passdb_key("secret-password", addr))
    assert json.loads(wire(f"Lshared/userdb/{addr}\t{addr}")[1:])["home"].endswith(addr)


def test_iterate_lists_accounts_and_other_paths_end_at_once(wire, new_addr):
    addrs = sorted(new_addr() for _ in range(3))
    for addr in addrs:
        wire(passdb_key("secret-password", addr))
    rows = wire("I0\t0\tshared/userdb/\t").split("\n")
    assert rows[-2:] == ["", ""]
    assert sorted(rows[:-2]) == [f"Oshared/userdb/{a}\t" for a in addrs]
    assert wire("I0\t0\tshared/passdb/\t") == "\n"


@pytest.mark.parametrize("line", [
    'Lshared/passdb/no-separator\tu',
    'Lshared/passdb/a"b"c\tu',
    'Lshared/passdb/dangling\\\tu',
])
def test_malformed_auth_keys_answer_f(wire, line):
    assert wire(line).startswith("Fmalformed key")


def test_unknown_key_is_not_found(wire):
    assert wire("Lshared/other/thing\tu") == "N\n"


def test_store_failure_answers_f_not_n(wire, new_addr, tmp_path):
    addr = new_addr()
    (tmp_path / "mail").write_text("not a directory")  # creation cannot succeed
    assert wire(passdb_key("secret-password", addr)) == "Ftemporary failure, try again later\n"


def policy_with_account(make_config, new_addr):
    config = make_config()
    policy = AccountPolicy(config, open_files(config.mailboxes_dir, config.mail_domain).accounts,
                           FixedProbe())
    existing = new_addr()
    policy.create(existing, "secret-password")
    return policy, existing


def test_existing_account_is_answered_while_creations_are_stuck(make_config, inline_pool,
                                                                  new_addr, reads):
    policy, existing = policy_with_account(make_config, new_addr)
    policy.reads = reads(policy.accounts)
    held = HeldPool()
    factory = DictServerFactory(AuthDict(policy, inline_pool, held))
    busy, other = factory.buildProtocol(None), factory.buildProtocol(None)
    for proto in (busy, other):
        proto.makeConnection(StringTransport())
    for _ in range(5):
        busy.dataReceived((passdb_key("secret-password", new_addr()) + "\n").encode())
    other.dataReceived((passdb_key("secret-password", existing) + "\n").encode())
    assert other.transport.value().startswith(b'O{"home"')
    assert busy.transport.value() == b"" and len(held.pending) == 5
    d, fn, args = held.pending[0]
    d.callback(fn(*args))  # the first creation finishes: its reply goes out
    assert busy.transport.value().startswith(b'O{"home"')


def test_userdb_store_failure_answers_f(wire, new_addr, tmp_path):
    (tmp_path / "mail").write_text("not a directory")
    addr = new_addr()
    assert wire(f"Lshared/userdb/{addr}\t{addr}") == "Ftemporary failure, try again later\n"


def test_inline_lookup_answers_behind_a_pending_creation_in_order(make_config, new_addr):
    policy, existing = policy_with_account(make_config, new_addr)
    pool, hashing = HeldPool(), HeldPool()
    proto = DictServerFactory(AuthDict(policy, pool, hashing)).buildProtocol(None)
    proto.makeConnection(StringTransport())
    newcomer = new_addr()
    proto.dataReceived((passdb_key("secret-password", newcomer) + "\n").encode())
    proto.dataReceived((passdb_key("secret-password", existing) + "\n").encode())
    # read inline; the creation waits for a hashing thread
    assert proto.transport.value() == b"" and len(hashing.pending) == 1 and not pool.pending
    hashing.release()
    # hashed: the account is written in the daemon's pool, not by the hashing thread
    assert [fn.__name__ for _, fn, _ in pool.pending] == ["store_new"] and not hashing.pending
    assert proto.transport.value() == b""
    pool.release()
    first, second = proto.transport.value().decode().splitlines()
    assert json.loads(first[1:])["home"].endswith(newcomer)
    assert json.loads(second[1:])["home"].endswith(existing)


@pytest.mark.parametrize("password", [
    "secret\x00password",  # passlib refuses NUL bytes
    "secret-p\udcffssword",  # invalid UTF-8 from the wire, kept as a surrogate
    "x" * 5000,  # over what the hasher takes
])
def test_a_password_that_cannot_be_hashed_is_refused_as_n_without_a_traceback(
        wire, new_addr, password, monkeypatch):
    events = []
    log = Logger(observer=events.append)
    monkeypatch.setattr(wire.proto, "log", log)
    monkeypatch.setattr(AccountLookups, "log", log)
    addr = new_addr()
    assert wire(passdb_key(password, addr)) == "N\n"
    assert [e for e in events if "log_failure" in e] == []
    assert wire(f"Lshared/userdb/{addr}\t{addr}") == "N\n"  # no account was made


def test_refused_logins_are_logged_once_a_minute_per_reason_and_all_counted(wire, monkeypatch):
    from prometheus_client import REGISTRY
    from twisted.internet.task import Clock

    from chatmail_services.core.logsafe import Repeated
    from chatmail_services.doveauth import lookups

    clock, events = Clock(), []
    monkeypatch.setattr(lookups, "REPEATED", Repeated(clock=clock.seconds))
    monkeypatch.setattr(AccountLookups, "log", Logger(observer=events.append))
    count = lambda: REGISTRY.get_sample_value(  # noqa: E731
        "chatmail_doveauth_refusals_total", {"reason": "localpart_length"}) or 0
    before = count()
    for _ in range(50):
        assert wire(passdb_key("secret-password", "short@chat.example.org")) == "N\n"
    assert wire(passdb_key("pw\x00secret-password", "abcdefghi@chat.example.org")) == "N\n"
    assert [e["reason"] for e in events] == ["localpart_length", "password_chars"]
    assert count() == before + 50
    clock.advance(60)
    wire(passdb_key("secret-password", "short@chat.example.org"))
    assert events[-1]["held"] == 49


@pytest.mark.parametrize("fields", [
    {"home": "/home/vmail/mail/chat.example.org/a@chat.example.org", "uid": "vmail",
     "gid": "vmail", "password": "{SHA512-CRYPT}$6$salt$hash./x"},
    {"home": "/srv/mäil/ü@chat.example.org", "uid": 5000, "gid": 5000},  # non-ASCII, ints
    {"password": 'a"quote\\back\tslash\x01\u2028', "home": ""},
])
def test_answer_json_is_what_json_dumps_writes(fields):
    assert fields_json(fields) == json.dumps(fields)
    assert json.loads(fields_json(fields)) == fields


def test_no_fields_is_not_found():
    assert fields_json(None) is None and fields_json({}) is None
