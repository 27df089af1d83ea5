"""chatmail-web under load: /new creations and index pages per second, CPU per request, RSS.

    python bench/webload.py [--requests 2000] [--concurrency 10] [--tls]

Starts its own chatmail-web (this checkout's, from the venv beside python)
on a free loopback port, on a fresh files store in a temporary directory,
with the per-client limit and the resource guards out of the way, and drives
it with `--concurrency` asyncio clients on keep-alive HTTP/1.1 connections.
Prints idle RSS, then per scenario: requests/s, the daemon's CPU seconds per
request (utime + stime of all its threads, /proc) and RSS after. `--tls`
serves HTTPS from a test CA (as scripts/relay-up does), else plain HTTP (as
behind nginx). The clients share the machine's cores with the daemon: on a
small machine the figures are a lower bound.
"""

import argparse
import asyncio
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import procstat  # noqa: E402
from freeport import free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def start_daemon(base: Path, port: int, tls: bool):
    web = {"listen": f"tcp:{port}:interface=127.0.0.1", "templates_dir": str(REPO / "conf" / "web"),
           "new_per_minute": 1e9, "new_burst": 1_000_000, "threads": 2}
    if tls:
        from notify_sink import make_test_ca

        ca, cert, key = make_test_ca(base / "ca")
        web.update(tls_cert_file=str(cert), tls_key_file=str(key))
    config = base / "chatmail.yaml"
    config.write_text(yaml.safe_dump({
        "mail_domain": "chat.example.org", "mailboxes_dir": str(base / "mail"),
        "doveauth": {"nocreate_file": str(base / "nocreate"), "max_load_1m": 1e9,
                     "min_available_memory": 0, "min_free_disk_space": 0},
        "web": web}))
    proc = subprocess.Popen([str(BIN / "chatmail-web"), "--config", str(config),
                             "--log-level", "warn"])
    deadline = time.monotonic() + 30
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("chatmail-web did not start")
        time.sleep(0.05)
    return proc, (base / "ca" / "ca.pem") if tls else None


async def client(port, context, method, path, count, codes):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    request = f"{method} {path} HTTP/1.1\r\nHost: chat.example.org\r\nContent-Length: 0\r\n\r\n"
    for _ in range(count):
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        await reader.readexactly(length)
        codes[int(head.split(b" ", 2)[1])] = codes.get(int(head.split(b" ", 2)[1]), 0) + 1
    writer.close()


async def drive(port, context, method, path, total, concurrency):
    codes = {}
    per = total // concurrency
    await asyncio.gather(*(client(port, context, method, path, per, codes)
                           for _ in range(concurrency)))
    return codes, per * concurrency


def measure(pid, port, context, method, path, total, concurrency):
    before, started = procstat.sample(pid), time.perf_counter()
    codes, done = asyncio.run(drive(port, context, method, path, total, concurrency))
    elapsed, after = time.perf_counter() - started, procstat.sample(pid)
    cpu_ms = (after.cpu_seconds - before.cpu_seconds) / done * 1000
    return (f"{method} {path}: {done} requests, {concurrency} clients, "
            f"{done / elapsed:.0f}/s, daemon CPU {cpu_ms:.2f} ms/request, "
            f"RSS after {after.rss_kib / 1024:.1f} MiB, answers {codes}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--new-requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="chatmail-webload-"))
    port = free_port()
    proc, ca = start_daemon(base, port, args.tls)
    try:
        context = ssl.create_default_context(cafile=str(ca)) if ca else None
        time.sleep(1.0)
        print(f"chatmail-web ({'HTTPS' if ca else 'HTTP'}), idle RSS "
              f"{procstat.sample(proc.pid).rss_kib / 1024:.1f} MiB")
        print(measure(proc.pid, port, context, "GET", "/", args.requests, args.concurrency))
        print(measure(proc.pid, port, context, "POST", "/new", args.new_requests,
                      args.concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
