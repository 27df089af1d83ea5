"""metadata over the dict wire: Dovecot's METADATA keys in, Dovecot's replies out."""

import json
import shutil

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger

from chatmail_services.core.dictcodec import tabescape
from chatmail_services.core.dictproto import DictServerFactory
from chatmail_services.metadata.dictfront import MetadataDict
from chatmail_services.metadata.serverkeys import ServerKeys

from ..conftest import RecordingPool

from .conftest import T0

GUID = "43f5f508a7ea0366dff30200c15250e3"
TOKEN_KEY = f"priv/{GUID}/devicetoken"
NEW_KEY = f"priv/{GUID}/messagenew"
SERVER = f"shared/{GUID}/vendor/vendor.dovecot/pvt/server/vendor/deltachat/"


@pytest.fixture
def wire(push, inline_pool, reads):
    def make(pool=inline_pool, **metadata):
        p = push(**metadata)
        p.reactor = MemoryReactorClock()
        keys = ServerKeys(p.config, p.reactor, inline_pool)
        p.notifier.startService()
        handler = MetadataDict(p.config, p.policy, keys, p.notifier, pool, p.clock,
                               reads(p.policy.store))
        proto = DictServerFactory(handler).buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"H3\t2\t0\t\tmetadata\n")

        def send(data: str) -> str:
            proto.dataReceived(data.encode("utf-8", "surrogateescape"))
            out = transport.value().decode()
            transport.clear()
            return out

        def commit(*changes, user=None, tid="1"):
            lines = "".join(f"{c}{tid}\t" + "\t".join(map(tabescape, args)) + "\n"
                            for c, *args in changes)
            return send(f"B{tid}\t{p.addr if user is None else user}\n{lines}C{tid}\n")

        p.send, p.commit, p.proto = send, commit, proto
        return p

    return make


def test_tokens_of_two_devices_are_added_and_looked_up(wire):
    p = wire()
    assert p.commit(("S", TOKEN_KEY, "phone-token")) == "O1\n"
    p.clock.advance(5)
    assert p.commit(("S", TOKEN_KEY, "tablet-token")) == "O1\n"
    assert p.send(f"L{TOKEN_KEY}\t{p.addr}\n") == "Otablet-token phone-token\n"


def test_lookup_without_tokens_is_not_found(wire):
    p = wire()
    assert p.send(f"L{TOKEN_KEY}\t{p.addr}\n") == "N\n"


def test_unset_removes_the_tokens(wire):
    p = wire()
    p.commit(("S", TOKEN_KEY, "phone-token"))
    p.commit(("S", TOKEN_KEY, "tablet-token"))
    assert p.commit(("U", TOKEN_KEY)) == "O1\n"
    assert p.send(f"L{TOKEN_KEY}\t{p.addr}\n") == "N\n"


@pytest.mark.parametrize("token,reason", [
    ("", "empty device token"),
    ("x" * 4097, "device token too long"),
    ("two words", "whitespace or control"),
    ("tab\there", "whitespace or control"),
])
def test_bad_tokens_fail_the_commit_with_a_reason(wire, token, reason):
    p = wire()
    out = p.commit(("S", TOKEN_KEY, token))
    assert out.startswith("F1\t") and reason in out
    assert p.tokens() == []


def test_messagenew_queues_one_notification_per_token_and_wakes_the_notifier(wire):
    p = wire()
    p.commit(("S", TOKEN_KEY, "phone-token"))
    p.commit(("S", TOKEN_KEY, "tablet-token"))
    p.poster.script = [200, 200]
    assert p.commit(("S", NEW_KEY, "")) == "O1\n"
    assert sorted(p.poster.posted) == ["phone-token", "tablet-token"]
    assert p.queued() == []


def test_messagenew_without_tokens_queues_nothing(wire):
    p = wire()
    assert p.commit(("S", NEW_KEY, "")) == "O1\n"
    assert p.poster.posted == [] and p.queued() == []


def test_a_delivery_to_an_address_without_tokens_never_waits_for_the_pool(wire):
    pool = RecordingPool()
    p = wire(pool=pool)
    assert p.commit(("S", NEW_KEY, "")) == "O1\n"
    assert pool.ran == [] and p.queued() == []
    assert p.commit(("S", TOKEN_KEY, "phone-token")) == "O1\n"
    assert p.commit(("S", NEW_KEY, "")) == "O1\n"  # the POST stays pending: queued
    assert pool.ran == ["apply", "apply"]
    assert len(p.queued()) == 1 and p.poster.posted == ["phone-token"]


def test_token_set_for_a_missing_account_fails(wire, new_addr):
    p = wire()
    out = p.commit(("S", TOKEN_KEY, "tok"), user=new_addr())
    assert out.startswith("F1\t") and "no such account" in out


LONG = "a" * 300 + "@chat.example.org"  # too long for a file name


@pytest.mark.parametrize("user", ["someone@elsewhere.org", "../../etc@chat.example.org", "",
                                  LONG])
def test_foreign_or_unsafe_users_get_F(wire, user):
    p = wire()
    assert p.commit(("S", TOKEN_KEY, "tok"), user=user).startswith("F1\t")
    assert p.send(f"L{TOKEN_KEY}\t{user}\n").startswith("F")
    assert p.commit(("S", NEW_KEY, "1"), user=user).startswith("F1\tnot an account")


def test_an_address_too_long_for_a_file_name_is_refused_without_a_traceback(wire, monkeypatch):
    p = wire()
    events = []
    monkeypatch.setattr(p.proto, "log", Logger(observer=events.append))
    assert p.commit(("S", TOKEN_KEY, "tok"), user=LONG) == (
        "F1\tnot an account of this relay: too long for a mailbox name\n")
    assert p.send(f"L{TOKEN_KEY}\t{LONG}\n").startswith("Fnot an account")
    assert events == []


def test_unknown_keys_are_refused_on_set_and_not_found_on_lookup(wire):
    p = wire()
    out = p.commit(("S", f"priv/{GUID}/comment", "hello"))
    assert out.startswith("F1\t")
    assert p.send(f"Lpriv/{GUID}/comment\t{p.addr}\n") == "N\n"
    assert p.send(f"L{SERVER}nosuchkey\t{p.addr}\n") == "N\n"


def test_server_keys_come_from_config(wire, tmp_path):
    versions = tmp_path / "appversions.json"
    versions.write_text(json.dumps({"clients": [{"clientId": "deltachat"}]}, indent=2))
    p = wire(server_keys={"irohrelay": {"value": "https://{mail_domain}"},
                          "appversions": {"file": str(versions)}})
    assert p.send(f"L{SERVER}irohrelay\t{p.addr}\n") == "Ohttps://chat.example.org\n"
    assert p.send(f"L{SERVER}maxsmtprecipients\t{p.addr}\n") == "O1000\n"
    assert p.send(f"L{SERVER}maxmessagesize\t{p.addr}\n") == "O31457280\n"
    assert p.send(f"L{SERVER}appversions\t{p.addr}\n") == \
        'O{"clients":[{"clientId":"deltachat"}]}\n'


def test_a_missing_or_bad_file_key_is_not_found(wire, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = wire(server_keys={"appversions": {"file": str(tmp_path / "missing.json")},
                          "bad": {"file": str(bad)}})
    assert p.send(f"L{SERVER}appversions\t{p.addr}\n") == "N\n"
    assert p.send(f"L{SERVER}bad\t{p.addr}\n") == "N\n"


def test_server_keys_cannot_be_set(wire):
    p = wire()
    assert p.commit(("S", f"{SERVER}maxsmtprecipients", "1")).startswith("F1\t")


def turn_wire(wire):
    p = wire(server_keys={"turn": {"value": "{mail_domain}:3478", "turn_socket": "/t.sock"}})
    pending = []
    p.send(f"L{SERVER}turn\t{p.addr}\n")  # reply waits for the helper
    (path, factory, timeout, _), = p.reactor.unixClients
    assert path == "/t.sock" and timeout == 5
    pending.append(factory)
    return p, factory


def test_turn_credentials_are_read_from_the_helper_socket(wire):
    p, factory = turn_wire(wire)
    proto = factory.buildProtocol(None)
    proto.makeConnection(StringTransport())
    proto.dataReceived(b"1700:secretpw\n")
    assert p.send("") == "Ochat.example.org:3478:1700:secretpw\n"


def test_a_silent_turn_helper_answers_not_found_after_the_timeout(wire):
    p, factory = turn_wire(wire)
    factory.buildProtocol(None).makeConnection(StringTransport())
    p.reactor.advance(4.9)
    assert p.send("") == ""
    p.reactor.advance(0.2)
    assert p.send("") == "N\n"


def test_a_missing_turn_helper_answers_not_found(wire):
    from twisted.internet.error import ConnectError

    p, factory = turn_wire(wire)
    factory.clientConnectionFailed(None, ConnectError("no such file"))
    assert p.send("") == "N\n"


def test_a_store_failure_is_f_with_a_fixed_text_and_no_traceback(wire, tmp_path):
    p = wire()
    shutil.rmtree(tmp_path / "mail")
    (tmp_path / "mail").write_text("not a directory")  # every store call fails
    p.proto.log = Logger(observer=(events := []).append)
    assert p.send(f"L{TOKEN_KEY}\t{p.addr}\n") == "Ftemporary failure, try again later\n"
    assert p.commit(("S", TOKEN_KEY, "phone")) == "F1\ttemporary failure, try again later\n"
    assert p.commit(("S", NEW_KEY, "1")) == "F1\ttemporary failure, try again later\n"
    assert len(events) == 3 and not [e for e in events if "log_failure" in e]
