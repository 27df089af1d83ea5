"""Socket activation: a daemon serves a socket it did not create, as under a .socket unit.

The test plays systemd: it owns the listening socket, hands it to the daemon
as fd 3 with LISTEN_FDS/LISTEN_PID (sd_listen_fds(3)), and keeps it across a
restart. A request sent while no daemon runs waits in the socket's backlog
and is answered once the daemon is back, instead of failing.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
# What systemd does before exec: the socket on fd 3, LISTEN_PID = the pid that
# exec keeps; systemd >= 227 also sets LISTEN_FDNAMES, which newer Twisted requires.
LAUNCH = """import os, sys
os.dup2(int(os.environ.pop("FD")), 3)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="dict")
os.execv(sys.argv[1], sys.argv[1:])
"""


@pytest.fixture
def procs():
    started = []
    yield started
    for proc in started:  # a failed test must not leave a daemon behind
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start(procs, daemon, config, listener):
    fd = listener.fileno()
    procs.append(subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(BIN / f"chatmail-{daemon}"), "--config", str(config),
         "--listen", "systemd:domain=UNIX:index=0"],
        env={**os.environ, "FD": str(fd)}, pass_fds=(fd,), stderr=subprocess.PIPE))
    return procs[-1]


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()


def send(path, lines):
    """Connect and send at once, before any daemon may be there; return a reader."""
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(20)
    c.connect(str(path))
    c.sendall("".join(line + "\n" for line in lines).encode())
    return c


def reply(conn):
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        assert chunk, "connection closed without a reply"
        data += chunk
    conn.close()
    return data.decode()


def test_doveauth_requests_wait_through_a_restart(tmp_path, new_addr, procs):
    config = tmp_path / "chatmail.yaml"
    config.write_text(yaml.safe_dump({
        "mail_domain": "chat.example.org", "mailboxes_dir": str(tmp_path / "mail"),
        "doveauth": {"listen": "unix:/nonexistent/never-used.socket",
                     "nocreate_file": str(tmp_path / "nocreate"), "max_load_1m": 1000}}))
    path = tmp_path / "doveauth.socket"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(16)
    addr = new_addr()
    hello = "H3\t2\t0\t\tauth"

    early = send(path, [hello, f'Lshared/passdb/a-long-secret"{addr}\t{addr}'])
    proc = start(procs, "doveauth", config, listener)
    assert json.loads(reply(early)[1:])["password"].startswith("{SHA512-CRYPT}")
    stop(proc)
    assert path.is_socket()  # the daemon must not unlink what systemd owns

    waiting = send(path, [hello, f"Lshared/userdb/{addr}\t{addr}"])  # no daemon running
    proc = start(procs, "doveauth", config, listener)
    assert json.loads(reply(waiting)[1:])["home"] == str(tmp_path / "mail" / addr)
    stop(proc)
    listener.close()


def test_bad_listen_argument_is_refused_naming_it(tmp_path):
    config = tmp_path / "chatmail.yaml"
    config.write_text("mail_domain: chat.example.org\n")
    proc = subprocess.run([BIN / "chatmail-lastlogin", "--config", config, "--listen", "udp:53"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--listen" in proc.stderr
