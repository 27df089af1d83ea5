"""Two hosts on one Redis: one registration mode and one count per invite for all.

Each host runs the real chatmail-doveauth and chatmail-web console scripts
(the web front on a UNIX socket, spoken to with http.client) with the same
`storage` URL; chatmailctl switches the mode and makes invites on one host.
"""

import http.client
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .test_redis_shared import Host

BIN = Path(sys.executable).parent
TEMPLATES = Path(__file__).resolve().parents[2] / "conf" / "web"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(str(self.path))


def post_new(host, token=None):
    conn = UnixHTTPConnection(host.dir / "web.socket")
    try:
        conn.request("POST", f"/new?token={token}" if token else "/new")
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def ctl(host, *argv):
    proc = subprocess.run([str(BIN / "chatmailctl"), "--config", str(host.config), *argv],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def two_hosts(tmp_path, fresh_redis):
    hosts = []
    for name in ("host0", "host1"):
        web = {"listen": f"unix:{tmp_path / name}/web.socket", "templates_dir": str(TEMPLATES),
               "new_per_minute": 600, "new_burst": 100}
        hosts.append(Host(tmp_path, name, fresh_redis.url, web=web).start("doveauth", "web"))
    yield hosts
    for host in hosts:
        host.stop()


def test_a_mode_set_on_one_host_holds_on_the_other(two_hosts, new_addr):
    a, b = two_hosts
    assert ctl(a, "registration", "invite") == "registration: invite\n"
    assert ctl(b, "registration", "status") == "registration: invite\n"
    assert b.passdb(new_addr(), "a-long-secret") == "N\n"  # create-on-login refused
    assert post_new(b)[0] == 403
    ctl(b, "registration", "closed")
    assert ctl(a, "registration", "status") == "registration: closed\n"
    assert post_new(a)[0] == 403
    ctl(a, "registration", "open")
    assert b.passdb(new_addr(), "a-long-secret").startswith("O{")


def test_one_invite_counts_once_across_hosts(two_hosts):
    a, b = two_hosts
    ctl(a, "registration", "invite")
    token = ctl(a, "invite", "create", "--uses", "3").splitlines()[-1].rpartition("=")[2]
    results, barrier = [], threading.Barrier(8)

    def use(host):
        barrier.wait()
        results.append(post_new(host, token))

    threads = [threading.Thread(target=use, args=(h,)) for h in (a, b) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [json.loads(body) for status, body in results if status == 200]
    assert len(created) == 3 and sorted(s for s, _ in results).count(403) == 5
    for creds in created:  # the other host's doveauth knows every new account
        for host in (a, b):
            assert host.userdb(creds["email"]).startswith("O{"), creds
    assert "0/3 uses left" in ctl(b, "invite", "list")
