"""Several hosts on one Redis: real daemons (console scripts) and a real redis-server.

Each "host" is a doveauth (and lastlogin) process with its own config and
sockets, all with the same `storage` URL. The tests speak the dict protocol
over the sockets as Dovecot does, and kill and restart redis-server under
the running daemons. The last test puts Debian's Dovecot in front.
"""

import imaplib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from passlib.hash import sha512_crypt

from ..redisserver import RedisServer
from .conftest import imap_login, login_ok

BIN = Path(sys.executable).parent
DOMAIN = "chat.example.org"
PREFIX = f"chatmail:{DOMAIN}:"

GUID = "43f5f508a7ea0366dff30200c15250e3"


def esc(s):
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")


def dict_exchange(path, dict_name, lines, replies=1):
    """One connection as Dovecot opens it: hello, the lines, read `replies` lines."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(f"H3\t2\t0\t\t{dict_name}\n".encode() + "".join(lines).encode())
        data = b""
        while data.count(b"\n") < replies:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode()


class Host:
    """One front host: doveauth, lastlogin and metadata processes sharing `storage`."""

    def __init__(self, base: Path, name: str, storage: str, **sections):
        self.dir = base / name
        self.dir.mkdir()
        self.procs = {}
        self.config = self.dir / "chatmail.yaml"
        self.config.write_text(yaml.safe_dump({**sections,
            "mail_domain": DOMAIN, "mailboxes_dir": str(self.dir / "mail"),
            "storage": storage, "redis": {"socket_timeout": 1},
            "doveauth": {"listen": f"unix:{self.dir}/doveauth.socket",
                         "nocreate_file": str(self.dir / "nocreate"), "max_load_1m": 1000,
                         "min_available_memory": 0, "min_free_disk_space": 0},
            "lastlogin": {"listen": f"unix:{self.dir}/lastlogin.socket"},
            "metadata": {"listen": f"unix:{self.dir}/metadata.socket",
                         **sections.get("metadata", {})}}))

    def start(self, *names):
        for name in names:
            log = open(self.dir / f"{name}.log", "ab")
            self.procs[name] = subprocess.Popen(
                [str(BIN / f"chatmail-{name}"), "--config", str(self.config)],
                stdout=log, stderr=log)
        for name in names:
            sock = self.dir / f"{name}.socket"
            deadline = time.monotonic() + 20
            while not sock.exists():
                assert self.procs[name].poll() is None, self.log(name)
                assert time.monotonic() < deadline, f"{name} did not listen"
                time.sleep(0.05)
        return self

    def log(self, name):
        return (self.dir / f"{name}.log").read_text()

    def passdb(self, addr, password):
        return dict_exchange(self.dir / "doveauth.socket", "auth",
                             [f'Lshared/passdb/{esc(password)}"{esc(addr)}\t{addr}\n'])

    def userdb(self, addr):
        return dict_exchange(self.dir / "doveauth.socket", "auth",
                             [f"Lshared/userdb/{addr}\t{addr}\n"])

    def login_day(self, addr, ts):
        return dict_exchange(self.dir / "lastlogin.socket", "lastlogin", [
            f"B1\t{addr}\n", f"S1\tshared/last-login/{addr}\t{ts}\n", "C1\n"])

    def read_login_day(self, addr):
        return dict_exchange(self.dir / "lastlogin.socket", "lastlogin",
                             [f"Lshared/last-login/{addr}\t{addr}\n"])

    def tokens(self, addr):
        return dict_exchange(self.dir / "metadata.socket", "metadata",
                             [f"Lpriv/{GUID}/devicetoken\t{addr}\n"])

    def set_token(self, addr, token):
        return dict_exchange(self.dir / "metadata.socket", "metadata", [
            f"B1\t{addr}\n", f"S1\tpriv/{GUID}/devicetoken\t{token}\n", "C1\n"])

    def stop(self):
        for proc in self.procs.values():
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def hosts(tmp_path):
    started = []

    def make(count, storage, *daemons):
        for i in range(count):
            started.append(Host(tmp_path, f"host{len(started)}", storage).start(*daemons))
        return started[-count:]

    yield make
    for host in started:
        host.stop()


@pytest.fixture
def own_redis():
    server = RedisServer(durable=True).start()
    yield server
    server.stop()


def stored_hash(reply):
    assert reply.startswith("O{"), reply
    return json.loads(reply[1:])["password"]


def verifies(password, stored):
    return sha512_crypt.verify(password, stored[len("{SHA512-CRYPT}"):])


def test_concurrent_first_logins_on_two_hosts_have_one_winner(hosts, fresh_redis, new_addr):
    a, b = hosts(2, fresh_redis.url, "doveauth")
    addrs = [new_addr() for _ in range(8)]
    replies, barrier = [], threading.Barrier(8)

    def attempt(i):
        barrier.wait()
        for addr in addrs:
            replies.append((addr, (a, b)[i % 2].passdb(addr, f"password-of-{i}")))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for addr in addrs:
        hashes = {stored_hash(reply) for a_, reply in replies if a_ == addr}
        assert len(hashes) == 1
        (winner_hash,) = hashes
        assert sum(verifies(f"password-of-{i}", winner_hash) for i in range(8)) == 1
        assert fresh_redis.client().hget(PREFIX + "account:" + addr, "enforceE2EEincoming")
    assert "account created" in a.log("doveauth") + b.log("doveauth")


def test_login_day_recorded_on_one_host_is_read_on_the_other(hosts, fresh_redis, new_addr):
    a, b = hosts(2, fresh_redis.url, "doveauth", "lastlogin")
    addr, now = new_addr(), int(time.time())
    stored_hash(a.passdb(addr, "a-long-secret"))
    assert a.login_day(addr, now + 86400) == "O1\n"
    assert b.read_login_day(addr) == f"O{(now + 86400) // 86400 * 86400}\n"
    stranger = new_addr()
    assert b.login_day(stranger, now) == "O1\n"  # accepted, but nothing is created
    assert fresh_redis.client().keys(f"*{stranger}*") == []


TEMPORARY = "temporary failure, try again later"


def test_redis_down_answers_f_then_recovers_without_restart(hosts, own_redis, new_addr):
    a, b = hosts(2, own_redis.url, "doveauth", "lastlogin", "metadata")
    old, newcomer = new_addr(), new_addr()
    old_hash = stored_hash(a.passdb(old, "a-long-secret"))
    own_redis.kill()
    for host in (a, b):
        for _ in range(3):  # the same fixed answer, never the store's own text
            assert host.passdb(old, "a-long-secret") == f"F{TEMPORARY}\n"
            assert host.passdb(newcomer, "a-long-secret") == f"F{TEMPORARY}\n"
        assert host.userdb(old) == f"F{TEMPORARY}\n"
        assert host.login_day(old, int(time.time())) == f"F1\t{TEMPORARY}\n"
        assert host.read_login_day(old) == f"F{TEMPORARY}\n"
        assert host.tokens(old) == f"F{TEMPORARY}\n"
        assert host.set_token(old, "phone") == f"F1\t{TEMPORARY}\n"
    own_redis.start()
    assert own_redis.client().keys(f"*{newcomer}*") == []  # nothing created in the outage
    for host in (a, b):
        assert stored_hash(host.passdb(old, "a-long-secret")) == old_hash
        assert host.login_day(old, int(time.time())) == "O1\n"
    assert verifies("a-long-secret", stored_hash(b.passdb(newcomer, "a-long-secret")))
    assert a.set_token(old, "phone") == "O1\n" and b.tokens(old) == "Ophone\n"
    for host in (a, b):
        for name in ("doveauth", "lastlogin", "metadata"):
            log = host.log(name)  # the outage logged once, no line per request
            assert log.count("redis store unreachable") == 1, log
            assert log.count("redis store reachable again") == 1, log
            assert "Traceback" not in log and TEMPORARY not in log, log
            assert host.procs[name].poll() is None


def test_dovecot_login_creates_the_account_in_redis(make_relay, fresh_redis, new_addr):
    relay = make_relay(storage=fresh_redis.url, redis={"key_prefix": "e2e:"})
    addr = new_addr()
    conn = imap_login(relay, addr, "a-long-secret")
    assert conn.select("INBOX")[0] == "OK"
    conn.logout()
    r = fresh_redis.client()
    assert r.hget(f"e2e:account:{addr}", "password").startswith("{SHA512-CRYPT}$6$")
    assert r.get(f"e2e:lastlogin:{addr}") == str(int(time.time()) // 86400 * 86400)
    assert not (relay.mailboxes / addr / "password").exists()
    assert not login_ok(relay, addr, "another-password")
    assert relay.doveadm("user", "*").stdout.split() == [addr]


def test_dovecot_tells_the_client_to_retry_while_redis_is_down(make_relay, own_redis, new_addr):
    relay = make_relay(storage=own_redis.url, redis={"socket_timeout": 1})
    addr = new_addr()
    assert login_ok(relay, addr, "a-long-secret")
    own_redis.kill()
    for who in (addr, new_addr()):
        with pytest.raises(imaplib.IMAP4.error) as refused:
            imap_login(relay, who, "a-long-secret")
        assert "UNAVAILABLE" in str(refused.value)  # not AUTHENTICATIONFAILED
    own_redis.start()
    assert login_ok(relay, addr, "a-long-secret")
    assert not login_ok(relay, addr, "another-password")
