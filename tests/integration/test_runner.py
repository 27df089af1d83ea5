"""The console scripts as operators run them: exit codes, sockets, signals, logs."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent


def write_config(path: Path, **sections) -> Path:
    data = {"mail_domain": "chat.example.org", "mailboxes_dir": str(path / "mail"),
            "doveauth": {"listen": f"unix:{path}/auth.socket:mode=660",
                         "nocreate_file": str(path / "nocreate"), "max_load_1m": 1000}}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    config = path / "chatmail.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def dict_request(sock_path: str, *lines: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(20)
        s.connect(sock_path)
        s.sendall(("H3\t2\t0\t\tauth\n" + "".join(l + "\n" for l in lines)).encode())
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode()


def wait_for_path(path: Path, proc) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_bad_config_exits_2_with_one_line_naming_the_key(tmp_path):
    config = tmp_path / "chatmail.yaml"
    config.write_text("mail_domain: chat.example.org\ndoveauth: {password_min_length: -1}\n")
    result = subprocess.run([BIN / "chatmail-doveauth", "--config", config],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == (f"chatmail-doveauth: {config}: doveauth.password_min_length: "
                             "must be at least 1\n")


def test_listen_failure_exits_1_instead_of_serving_nothing(tmp_path):
    config = write_config(tmp_path, doveauth={
        "listen": f"unix:{tmp_path}/missing-dir/auth.socket"})
    result = subprocess.run([BIN / "chatmail-doveauth", "--config", config],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "cannot listen on" in result.stderr


def test_sigterm_stops_cleanly_and_logs_hold_no_secrets(tmp_path):
    config = write_config(tmp_path)
    proc = subprocess.Popen([BIN / "chatmail-doveauth", "--config", config],
                            stderr=subprocess.PIPE, text=True)
    sock = tmp_path / "auth.socket"
    password, addr = "very-secret-password-42", "abcdefghi@chat.example.org"
    try:
        wait_for_path(sock, proc)
        reply = dict_request(str(sock), f'Lshared/passdb/{password}"{addr}\t{addr}',
                             f'Lshared/passdb/{password}"short@chat.example.org\tx')
        assert reply.startswith('O{"home"') and reply.endswith("\nN\n")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:  # a failed step above: never leave the daemon behind
            proc.kill()
            proc.wait()
    log = proc.stderr.read()
    assert "account created" in log and "login refused: localpart_length" in log
    assert password not in log and "abcdefghi" not in log and "short@" not in log


def test_systemd_socket_activation(tmp_path):
    """A socket handed over as systemd does (fd 3, LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES)."""
    config = write_config(tmp_path, doveauth={"listen": "systemd:domain=UNIX:index=0"})
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "activated.socket"))
    listener.listen(16)
    fd = listener.fileno()

    def hand_over():
        os.dup2(fd, 3)
        os.set_inheritable(3, True)

    # `exec` keeps the shell's pid, so LISTEN_PID=$$ names the daemon itself.
    # (assignments in front of `exec`, a special builtin, are not exported)
    script = f'export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=doveauth; exec "{BIN}/chatmail-doveauth" --config "{config}"'
    # close_fds would close fd 3 again after preexec_fn (it is not in pass_fds).
    proc = subprocess.Popen(["sh", "-c", script], preexec_fn=hand_over, close_fds=False,
                            stderr=subprocess.PIPE, text=True)
    try:
        addr = "activated@chat.example.org"
        reply = dict_request(str(tmp_path / "activated.socket"),
                             f'Lshared/passdb/secret-password"{addr}\t{addr}')
        assert reply.startswith('O{"home"'), reply
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        listener.close()


def mapped_files(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_daemons_without_tls_connections_run_without_pyopenssl(tmp_path):
    """launch.py: doveauth, lastlogin, filtermail and metadata (its HTTPS is
    the ssl module's) leave pyOpenSSL, and with it cryptography's bindings,
    out of memory; chatmail-web, which may serve TLS itself, has them, which
    shows the check sees them when they are there."""
    config = write_config(
        tmp_path, lastlogin={"listen": f"unix:{tmp_path}/lastlogin.socket"},
        metadata={"listen": f"unix:{tmp_path}/metadata.socket"},
        filtermail={"incoming": {"listen": f"unix:{tmp_path}/incoming.socket",
                                 "reinject": "tcp:127.0.0.1:10026"}},
        web={"listen": f"unix:{tmp_path}/web.socket",
             "templates_dir": str(Path(__file__).resolve().parents[2] / "conf" / "web")})
    runs = [("doveauth", [], "auth.socket", False), ("lastlogin", [], "lastlogin.socket", False),
            ("filtermail", ["incoming"], "incoming.socket", False),
            ("metadata", [], "metadata.socket", False), ("web", [], "web.socket", True)]
    for name, extra, socket_name, has_tls in runs:
        proc = subprocess.Popen([BIN / f"chatmail-{name}", "--config", config, *extra],
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_for_path(tmp_path / socket_name, proc)
            assert ("/cryptography/" in mapped_files(proc.pid)) is has_tls, name
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def thread_stats(pid: int, field: int) -> dict:
    """Each thread's `field` (numbered as in proc(5)) of /proc/PID/task/TID/stat."""
    values = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        values[int(task.name)] = int(stat.rsplit(")", 1)[1].split()[field - 3])
    return values


def thread_nices(pid: int) -> dict:
    return thread_stats(pid, 19)


def thread_policies(pid: int) -> dict:
    """Each thread's scheduling policy (os.SCHED_*)."""
    return thread_stats(pid, 41)


def test_account_creation_hashes_at_the_lowest_cpu_priority(tmp_path):
    """doveauth's hashing threads run at nice 19 and under SCHED_IDLE so that
    a burst of new accounts yields the CPUs to logins; the reactor thread
    keeps its own priority and policy."""
    config = write_config(tmp_path)
    proc = subprocess.Popen([BIN / "chatmail-doveauth", "--config", config],
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_path(tmp_path / "auth.socket", proc)
        before = thread_nices(proc.pid)
        addr = "newcomer1@chat.example.org"
        reply = dict_request(str(tmp_path / "auth.socket"),
                             f'Lshared/passdb/a-long-password-1"{addr}\t{addr}')
        assert reply.startswith('O{"home"'), reply
        after, policies = thread_nices(proc.pid), thread_policies(proc.pid)
        assert after[proc.pid] == before[proc.pid] == os.getpriority(os.PRIO_PROCESS, 0)
        assert 19 in after.values() and 19 not in before.values()
        hashing = [tid for tid, nice in after.items() if nice == 19]
        assert {policies[tid] for tid in hashing} == {os.SCHED_IDLE}
        assert policies[proc.pid] == os.sched_getscheduler(0) != os.SCHED_IDLE
    finally:
        proc.terminate()
        proc.wait(timeout=20)
