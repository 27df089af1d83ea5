"""lastlogin over the dict wire: Dovecot's last_login plugin transactions."""

import os

import pytest
from twisted.internet.testing import StringTransport
from twisted.logger import Logger

from chatmail_services.core.dictproto import DictServerFactory
from chatmail_services.core.days import day_of
from chatmail_services.core.store.files import open_files
from chatmail_services.lastlogin.dictfront import LastLoginDict

T0 = 1_700_000_000


@pytest.fixture
def lastlogin(make_config, inline_pool, reads):
    config = make_config()
    store = open_files(config.mailboxes_dir, config.mail_domain)
    handler = LastLoginDict(config, store.accounts, inline_pool, reads(store.accounts))
    proto = DictServerFactory(handler).buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"H3\t2\t0\t\tlastlogin\n")

    class Client:
        def login(self, addr, value, tid="1"):
            data = f"B{tid}\t{addr}\nS{tid}\tshared/last-login/{addr}\t{value}\nC{tid}\n"
            return self.send(data)

        def send(self, data):
            proto.dataReceived(data.encode())
            out = transport.value().decode()
            transport.clear()
            return out

    c = Client()
    c.store, c.config, c.proto = store, config, proto
    return c


def mtime(store, addr):
    return int(os.stat(store.accounts.layout.home(addr) / "password").st_mtime)


def test_login_records_the_utc_day(lastlogin, new_addr):
    addr = new_addr()
    lastlogin.store.accounts.create_account(addr, "{SHA512-CRYPT}$6$x$y", T0 - 40 * 86400)
    assert lastlogin.login(addr, T0 + 3600) == "O1\n"
    assert mtime(lastlogin.store, addr) == day_of(T0)
    assert lastlogin.send(f"Lshared/last-login/{addr}\t{addr}\n") == f"O{day_of(T0)}\n"


def test_same_day_login_does_not_write(lastlogin, new_addr):
    addr = new_addr()
    lastlogin.store.accounts.create_account(addr, "{SHA512-CRYPT}$6$x$y", T0)
    path = lastlogin.store.accounts.layout.home(addr) / "password"
    os.utime(path, ns=(day_of(T0) * 10**9 + 5, day_of(T0) * 10**9 + 5))  # marker nanoseconds
    lastlogin.login(addr, T0 + 60)
    assert os.stat(path).st_mtime_ns == day_of(T0) * 10**9 + 5


def test_unknown_address_gets_nothing_created(lastlogin, new_addr):
    addr = new_addr()
    assert lastlogin.login(addr, T0) == "O1\n"
    assert not os.path.exists(lastlogin.config.mailboxes_dir)
    assert lastlogin.send(f"Lshared/last-login/{addr}\t{addr}\n") == "N\n"


@pytest.mark.parametrize("value", ["yesterday", "", "-5", str(1 << 40), "1.5"])
def test_bad_value_fails_the_commit_and_connection_stays(lastlogin, new_addr, value):
    addr = new_addr()
    lastlogin.store.accounts.create_account(addr, "{SHA512-CRYPT}$6$x$y", T0)
    assert lastlogin.login(addr, value, tid="9").startswith("F9\t")
    assert lastlogin.login(addr, T0, tid="10") == "O10\n"


@pytest.mark.parametrize("key", ["shared/last-login/../../etc@chat.example.org",
                                 "shared/last-login/someone@other.org",
                                 "shared/other/abcdefghi@chat.example.org"])
def test_foreign_or_unsafe_keys_are_ignored(lastlogin, key):
    assert lastlogin.send(f"B1\tu\nS1\t{key}\t{T0}\nC1\n") == "O1\n"
    assert not os.path.exists(lastlogin.config.mailboxes_dir)


def test_a_store_failure_is_f_with_a_fixed_text_never_the_stores(lastlogin, new_addr, tmp_path):
    addr = new_addr()
    (tmp_path / "mail").write_text("not a directory")  # every store call fails
    assert lastlogin.login(addr, T0) == "F1\ttemporary failure, try again later\n"
    assert lastlogin.send(f"Lshared/last-login/{addr}\t{addr}\n") == \
        "Ftemporary failure, try again later\n"


class CountingPool:
    """The write pool, run at once but counted: which commits needed a thread."""

    def __init__(self):
        self.calls = 0

    def run(self, fn, *args):
        from twisted.internet import defer

        self.calls += 1
        return defer.maybeDeferred(fn, *args)


def test_on_inline_reads_only_a_new_day_goes_to_the_write_pool(make_config, new_addr):
    config = make_config()
    store = open_files(config.mailboxes_dir, config.mail_domain)
    pool = CountingPool()
    proto = DictServerFactory(LastLoginDict(config, store.accounts, pool)
                              ).buildProtocol(None)
    proto.makeConnection(StringTransport())
    addr, unknown = new_addr(), new_addr()
    store.accounts.create_account(addr, "{SHA512-CRYPT}$6$x$y", T0)
    for tid, (who, when) in enumerate([(addr, T0 + 60), (unknown, T0), (addr, T0 + 86400)]):
        proto.dataReceived(f"B{tid}\t{who}\nS{tid}\tshared/last-login/{who}\t{when}\nC{tid}\n"
                           .encode())
    assert proto.transport.value() == b"O0\nO1\nO2\n"
    assert pool.calls == 1 and mtime(store, addr) == day_of(T0 + 86400)


def test_an_address_too_long_for_a_file_name_is_not_found_and_not_recorded(lastlogin,
                                                                          monkeypatch):
    events = []
    monkeypatch.setattr(lastlogin.proto, "log", Logger(observer=events.append))
    os.makedirs(lastlogin.config.mailboxes_dir, exist_ok=True)  # as on a relay
    addr = "a" * 300 + "@" + lastlogin.config.mail_domain
    assert lastlogin.send(f"Lshared/last-login/{addr}\t{addr}\n") == "N\n"
    assert lastlogin.login(addr, T0) == "O1\n"  # ignored, like any key that is no record
    assert events == []
