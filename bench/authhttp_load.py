"""doveauth's HTTP front-end (Dovecot 2.4 Lua passdb) under load.

Starts chatmail-doveauth from this checkout's venv on a files store in a fresh
directory, creates --accounts accounts through POST /passdb, then for each
--concurrency level runs that many keep-alive clients (as Dovecot's Lua HTTP
client keeps its connection) doing POST /passdb for random existing accounts
for --duration seconds. Prints lookups per second, p50/p99 latency and the
daemon's CPU time per lookup (utime + stime of all its threads, /proc).

    .venv/bin/python bench/authhttp_load.py [--concurrency 1 10 50] [--duration 10]
"""

import argparse
import asyncio
import os
import random
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procstat import cpu_seconds

BIN = Path(sys.executable).parent
DOMAIN = "chat.example.org"


def new_account():
    alphabet = string.ascii_lowercase + string.digits
    addr = "".join(secrets.choice(alphabet) for _ in range(9)) + "@" + DOMAIN
    return addr, "".join(secrets.choice(alphabet) for _ in range(12))


class Client:
    """One keep-alive HTTP/1.1 connection to the UNIX socket."""

    def __init__(self, path):
        self.path = path

    async def open(self):
        self.reader, self.writer = await asyncio.open_unix_connection(self.path)

    async def post(self, target: str, body: str) -> int:
        data = body.encode()
        self.writer.write(b"POST http://doveauth.invalid%s HTTP/1.1\r\nHost: doveauth.invalid\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (target.encode(), len(data), data))
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await self.reader.readexactly(length)
        return int(head.split()[1])

    def close(self):
        self.writer.close()


async def create_accounts(path, count):
    accounts = [new_account() for _ in range(count)]
    clients = [Client(path) for _ in range(10)]
    for c in clients:
        await c.open()

    async def work(client, chunk):
        for addr, password in chunk:
            assert await client.post("/passdb", f"{addr}\t{password}") == 200

    await asyncio.gather(*(work(c, accounts[i::10]) for i, c in enumerate(clients)))
    for c in clients:
        c.close()
    return accounts


async def run_level(path, accounts, concurrency, duration, pid):
    clients = [Client(path) for _ in range(concurrency)]
    for c in clients:
        await c.open()
    latencies, errors = [], 0
    deadline = time.monotonic() + duration

    async def loop(client):
        nonlocal errors
        while time.monotonic() < deadline:
            addr, password = random.choice(accounts)
            start = time.perf_counter()
            status = await client.post("/passdb", f"{addr}\t{password}")
            latencies.append(time.perf_counter() - start)
            errors += status != 200

    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.gather(*(loop(c) for c in clients))
    cpu, elapsed = cpu_seconds(pid) - cpu0, time.monotonic() - t0
    for c in clients:
        c.close()
    latencies.sort()
    n = len(latencies)
    return dict(concurrency=concurrency, lookups=n, errors=errors, per_second=n / elapsed,
                p50_ms=latencies[n // 2] * 1000, p99_ms=latencies[min(n - 1, n * 99 // 100)] * 1000,
                cpu_ms_per_lookup=cpu / n * 1000)


def start_doveauth(base):
    sock = base / "doveauth-http.socket"
    config = base / "chatmail.yaml"
    config.write_text(f"""mail_domain: {DOMAIN}
mailboxes_dir: {base}/mail
doveauth:
  listen: "unix:{base}/doveauth.socket"
  http_listen: "unix:{sock}"
  nocreate_file: {base}/nocreate
  max_load_1m: 1000
  min_free_disk_space: 1M
""")
    proc = subprocess.Popen([str(BIN / "chatmail-doveauth"), "--config", str(config),
                             "--log-level", "warn"])
    for _ in range(200):
        if sock.exists():
            return proc, sock
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("doveauth did not start")


async def main_async(args, sock, pid):
    accounts = await create_accounts(str(sock), args.accounts)
    print(f"doveauth HTTP front-end, {args.accounts} accounts, {args.duration:g}s per level, "
          f"Python {sys.version.split()[0]}")
    print("| clients | lookups/s | p50 ms | p99 ms | doveauth CPU ms/lookup | errors |")
    print("|---|---|---|---|---|---|")
    for level in args.concurrency:
        r = await run_level(str(sock), accounts, level, args.duration, pid)
        print(f"| {r['concurrency']} | {r['per_second']:.0f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['cpu_ms_per_lookup']:.3f} | {r['errors']} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--accounts", type=int, default=200)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="chatmail-authhttp-"))
    proc, sock = start_doveauth(base)
    try:
        asyncio.run(main_async(args, sock, proc.pid))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parent)
    main()
