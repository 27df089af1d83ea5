"""doveauth over HTTP (Dovecot 2.4's Lua passdb): requests in, replies out.

Raw HTTP/1.1 bytes into the real twisted.web site on a StringTransport, the
policy on a files store in tmp_path, a task.Clock for the request deadline.
"""

import pytest
from passlib.hash import sha512_crypt
from twisted.internet import task
from twisted.internet.testing import StringTransport

from chatmail_services.core.store import StoreUnavailable
from chatmail_services.core.store.files import FilesAccounts, open_files
from chatmail_services.doveauth import httpfront
from chatmail_services.doveauth.policy import AccountPolicy

from .test_policy import FixedProbe

PASSWORD = "a-long-secret"


class DownAccounts(FilesAccounts):
    """The files store's accounts with the backend gone (every read fails as an outage)."""

    def get_password(self, addr):
        raise StoreUnavailable("store down")

    def iter_accounts(self):
        raise StoreUnavailable("store down")


class Conn:
    """One client connection to the front-end."""

    def __init__(self, site):
        self.transport = StringTransport()
        self.proto = site.buildProtocol(None)
        self.proto.makeConnection(self.transport)

    def send(self, data: bytes, bytewise=False):
        for i in range(len(data)) if bytewise else [None]:
            self.proto.dataReceived(data if i is None else data[i:i + 1])
        out = self.transport.value()
        self.transport.clear()
        return Reply(out)

    def request(self, method, path, body=b"", headers=b"", **kw):
        head = b"%s %s HTTP/1.1\r\nHost: doveauth.invalid\r\n%s" % (method, path, headers)
        if method == b"POST" and b"Transfer-Encoding" not in headers:
            head += b"Content-Length: %d\r\n" % len(body)
        return self.send(head + b"\r\n" + body, **kw)


class Reply:
    def __init__(self, raw: bytes):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split()[1]) if raw else None
        self.headers = dict(line.split(b": ", 1) for line in lines[1:] if b": " in line)

    def fields(self) -> dict:
        return dict(line.split("\t", 1) for line in self.body.decode().splitlines())


@pytest.fixture
def front(make_config, inline_pool):
    def make(down=False):
        config = make_config()
        accounts = open_files(config.mailboxes_dir, config.mail_domain).accounts
        if down:
            accounts = DownAccounts(accounts.layout, accounts.queue)
        policy = AccountPolicy(config, accounts, FixedProbe())
        clock = task.Clock()
        site = httpfront.auth_site(policy, inline_pool, reactor=clock)
        conn = Conn(site)
        conn.config, conn.clock, conn.site = config, clock, site
        return conn

    return make


def passdb(conn, addr, password=PASSWORD, **kw):
    return conn.request(b"POST", b"/passdb", f"{addr}\t{password}".encode(), **kw)


def test_first_login_creates_and_answers_passdb_and_prefetch_fields(front, new_addr):
    conn, addr = front(), new_addr()
    reply = passdb(conn, addr)
    assert reply.status == 200
    fields = reply.fields()
    assert set(fields) == {"password", "userdb_home", "userdb_uid", "userdb_gid"}
    assert fields["password"].startswith("{SHA512-CRYPT}$6$")
    assert sha512_crypt.verify(PASSWORD, fields["password"][len("{SHA512-CRYPT}"):])
    assert fields["userdb_home"] == str(conn.config.mailboxes_path / addr)


def test_wrong_password_answers_the_stored_hash_unchanged(front, new_addr):
    conn, addr = front(), new_addr()
    first = passdb(conn, addr).fields()["password"]
    assert passdb(conn, addr, "another-password").fields()["password"] == first


def test_absolute_form_target_from_a_unix_socket_client_is_served(front, new_addr):
    # Dovecot's HTTP client through proxy_socket_path sends the absolute form.
    conn, addr = front(), new_addr()
    reply = conn.request(b"POST", b"http://doveauth.invalid/passdb",
                         f"{addr}\t{PASSWORD}".encode())
    assert reply.status == 200 and "password" in reply.fields()


def test_tab_escaped_password_is_unescaped(front, new_addr):
    conn, addr, password = front(), new_addr(), "tab\there-and-\x01-long"
    body = addr + "\t" + password.replace("\x01", "\x011").replace("\t", "\x01t")
    fields = conn.request(b"POST", b"/passdb", body.encode()).fields()
    assert sha512_crypt.verify(password, fields["password"][len("{SHA512-CRYPT}"):])


def test_refused_creation_is_404_and_creates_nothing(front):
    conn = front()
    reply = passdb(conn, "short@chat.example.org")
    assert reply.status == 404
    assert not (conn.config.mailboxes_path / "short@chat.example.org").exists()


def test_userdb_knows_existing_accounts_only(front, new_addr):
    conn, addr = front(), new_addr()
    assert conn.request(b"POST", b"/userdb", addr.encode()).status == 404
    passdb(conn, addr)
    reply = conn.request(b"POST", b"/userdb", addr.encode())
    assert reply.status == 200
    assert reply.fields() == {"home": str(conn.config.mailboxes_path / addr),
                              "uid": "vmail", "gid": "vmail"}


def test_users_lists_every_account(front, new_addr):
    conn, addrs = front(), sorted(new_addr() for _ in range(3))
    for addr in addrs:
        passdb(conn, addr)
    reply = conn.request(b"GET", b"/users")
    assert reply.status == 200
    assert sorted(reply.body.decode().split()) == addrs


def test_store_outage_is_503_and_creates_nothing(front, new_addr):
    conn, addr = front(down=True), new_addr()
    assert passdb(conn, addr).status == 503
    assert conn.request(b"POST", b"/userdb", addr.encode()).status == 503
    assert conn.request(b"GET", b"/users").status == 503
    assert not (conn.config.mailboxes_path / addr).exists()


@pytest.mark.parametrize("body", [
    b"\xff\xfe not utf-8\tpassword-long",
    b"only-one-field",
    b"a\tb\tc",
    b"user@chat.example.org\tbad-escape-\x01x",
    b"user@chat.example.org\nsecond-line\tpw",
])
def test_malformed_passdb_body_is_400_and_the_connection_stays_usable(front, new_addr, body):
    conn = front()
    reply = conn.request(b"POST", b"/passdb", body)
    assert reply.status == 400 and reply.body.startswith(b"bad request")
    assert passdb(conn, new_addr()).status == 200


@pytest.mark.parametrize("password", [b"not-utf8-\xff\xfe-secret", b"latin1-caf\xe9-secret"])
def test_a_password_that_is_not_utf8_is_refused_404_not_400(front, new_addr, password):
    """As over the dict socket: the policy refuses it (password_chars), nothing is created."""
    conn, addr = front(), new_addr()
    reply = conn.request(b"POST", b"/passdb", addr.encode() + b"\t" + password)
    assert reply.status == 404
    assert not (conn.config.mailboxes_path / addr).exists()


def test_wrong_method_is_405_with_allow(front):
    reply = front().request(b"GET", b"/passdb")
    assert reply.status == 405 and reply.headers[b"Allow"] == b"POST"


def test_unknown_path_is_404(front):
    assert front().request(b"POST", b"/admin", b"x").status == 404


def test_request_fed_one_byte_at_a_time_is_answered(front, new_addr):
    assert passdb(front(), new_addr(), bytewise=True).status == 200


def test_declared_huge_body_is_413_and_closes_without_reading_it(front):
    conn = front()
    reply = conn.send(b"POST /passdb HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n"
                      b"abc")
    assert reply.status == 413
    assert conn.transport.disconnecting
    assert conn.send(b"x" * 100000).raw == b""  # nothing more is answered


def test_chunked_body_over_the_limit_is_413(front):
    conn = front()
    chunk = b"x" * 5000
    data = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    reply = conn.request(b"POST", b"/passdb", data, headers=b"Transfer-Encoding: chunked\r\n")
    assert reply.status == 413
    assert conn.transport.disconnecting


def test_client_that_trickles_gets_408_and_is_disconnected(front):
    conn = front()
    assert conn.send(b"POST /passdb HTTP/1.1\r\nHost: x\r\n").raw == b""
    conn.clock.advance(httpfront.REQUEST_DEADLINE + 1)
    reply = Reply(conn.transport.value())
    assert reply.status == 408
    assert conn.transport.disconnecting


def test_deadline_does_not_fire_between_keep_alive_requests(front, new_addr):
    conn = front()
    assert passdb(conn, new_addr()).status == 200
    conn.clock.advance(httpfront.REQUEST_DEADLINE + 1)
    assert conn.transport.value() == b"" and not conn.transport.disconnecting
    assert passdb(conn, new_addr()).status == 200
