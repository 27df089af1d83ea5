"""Soak test: does memory stay flat under a real connection rate? (not a unit test)

Starts chatmail-filtermail (outgoing) and chatmail-lastlogin from a checkout,
on loopback in a scratch directory, then sends N messages through the filter
over M concurrent connections, one message per connection as Postfix's
before-queue client does (smtpload.py's client; its reinject sink checks that
every message answered 250 arrived once and unchanged), and K last-login
transactions, each on a fresh dict connection as Dovecot does, spread over
the same time. At 0 % and at every quarter of N it prints each daemon's RSS
and open file descriptors; at the end the growth after warm-up (the first
--warmup messages).

    .venv/bin/python bench/soak.py --messages 20000 --connections 10 --dict-requests 20000
    .venv/bin/python bench/soak.py --src /tmp/main-src/pkg ...   # another checkout's code

`--src DIR` runs the code of another checkout: DIR must contain the package
as `chatmail_services` (a symlink to that checkout's `services/` will do); it
goes first on PYTHONPATH of the daemons. Only the standard library here, but
the daemons run under the same interpreter: run it with the venv's.
"""

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from dictwire import DictClient, Transaction  # noqa: E402
from freeport import free_port  # noqa: E402
from procstat import memory_kib  # noqa: E402
from smtpload import DOMAIN, Sink, make_body, send_one  # noqa: E402

# as the console script starts it (chatmail_services.launch: without pyOpenSSL)
START = ("import sys; from chatmail_services.launch import {0} as main; "
         "sys.argv[0] = 'chatmail-{0}'; main()")


def write_config(base: Path, filter_port: int, sink_port: int) -> Path:
    (base / "mail").mkdir()
    config = base / "chatmail.yaml"
    config.write_text(f"""mail_domain: {DOMAIN}
mailboxes_dir: {base}/mail
lastlogin:
  listen: "unix:{base}/lastlogin.socket:mode=660"
filtermail:
  outgoing:
    listen: "tcp:{filter_port}:interface=127.0.0.1"
    reinject: "tcp:127.0.0.1:{sink_port}"
  dkim: {{sign: null}}
  max_user_send_per_minute: 1000000
  max_user_send_burst_size: 1000000
""")
    return config


def start(name, args, config, src, base):
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = f"{src}:{env.get('PYTHONPATH', '')}"
    log = open(base / f"{name}.log", "ab")
    cmd = [sys.executable, "-c", START.format(name), "--config", str(config), *args]
    return subprocess.Popen(cmd, stdout=log, stderr=log, env=env)


def wait_until(ready, proc, what):
    deadline = time.monotonic() + 30
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start (see its log)")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def snapshot(pid: int):
    return memory_kib(pid)["VmRSS"], len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    def __init__(self, args, daemons, filter_port, socket_path):
        self.args, self.daemons = args, daemons
        self.filter_port, self.socket_path = filter_port, socket_path
        self.body = make_body("encrypted", 2048)
        self.sent = self.dict_done = 0
        self.replies, self.errors, self.rows = {}, [], []
        self.marks = sorted([(args.warmup, "warm-up")] + [
            (args.messages * q // 4, f"{25 * q} %") for q in (1, 2, 3, 4)])

    def record(self, label):
        self.rows.append((label, {name: snapshot(p.pid) for name, p in self.daemons.items()}))

    async def message_worker(self, counter):
        for index in counter:
            try:
                _, reply = await send_one("127.0.0.1", self.filter_port, index,
                                          f"u{index % 1000:06d}@{DOMAIN}", self.body)
                code = reply[:3].decode()
                self.replies[code] = self.replies.get(code, 0) + 1
            except (OSError, RuntimeError) as e:
                self.errors.append(f"smtp: {e}")
            self.sent += 1
            while self.marks and self.sent >= self.marks[0][0]:
                self.record(self.marks.pop(0)[1])

    async def dict_worker(self, counter):
        for index in counter:
            # keep pace with the messages: K requests over the N messages
            while index * self.args.messages > self.args.dict_requests * self.sent:
                if self.sent >= self.args.messages:
                    break
                await asyncio.sleep(0.005)
            addr = f"d{index % 1000:08d}@{DOMAIN}"
            try:
                client = await DictClient.open(self.socket_path, "lastlogin")
                kind, _ = await client.perform(Transaction(
                    addr, ((f"shared/last-login/{addr}", str(int(time.time()))),)))
                await client.close()
                if kind != "O":
                    self.errors.append(f"dict: answered {kind}")
            except OSError as e:
                self.errors.append(f"dict: {e}")
            self.dict_done += 1

    async def run(self):
        messages = iter(range(self.args.messages))
        requests = iter(range(self.args.dict_requests))
        self.record("0 %")
        started = time.monotonic()
        await asyncio.gather(*[self.message_worker(messages) for _ in range(self.args.connections)],
                             *[self.dict_worker(requests) for _ in range(2)])
        return time.monotonic() - started


def report(soak, elapsed, sink):
    names = list(soak.daemons)
    print(f"{soak.sent} messages over {soak.args.connections} connections (one message "
          f"each), {soak.dict_done} dict requests (fresh connections), {elapsed:.1f} s")
    print("| point | " + " | ".join(f"{n} RSS MiB | {n} fds" for n in names) + " |")
    print("|---" * (1 + 2 * len(names)) + "|")
    for label, values in soak.rows:
        cells = [f"{values[n][0] / 1024:.1f} | {values[n][1]}" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")
    warm = dict(soak.rows)["warm-up"]
    last = soak.rows[-1][1]
    for n in names:
        print(f"growth after warm-up ({soak.args.warmup} messages), {n}: "
              f"{(last[n][0] - warm[n][0]) / 1024:+.1f} MiB RSS, {last[n][1] - warm[n][1]:+d} fds")
    accepted = soak.replies.get("250", 0)
    print(f"replies {soak.replies}; reinjected {len(sink.arrived)} of {accepted} accepted; "
          f"errors {len(soak.errors)}{': ' + soak.errors[0] if soak.errors else ''}")


async def main_async(args, base):
    filter_port, sink_port = free_port(), free_port()
    config = write_config(base, filter_port, sink_port)
    sink = Sink()
    server = await asyncio.start_server(sink.serve, "127.0.0.1", sink_port)
    socket_path = base / "lastlogin.socket"
    daemons = {"filtermail": start("filtermail", ["outgoing"], config, args.src, base),
               "lastlogin": start("lastlogin", [], config, args.src, base)}
    try:
        wait_until(lambda: port_open(filter_port), daemons["filtermail"], "filtermail")
        wait_until(socket_path.exists, daemons["lastlogin"], "lastlogin")
        soak = Soak(args, daemons, filter_port, f"unix:{socket_path}")
        elapsed = await soak.run()
        await asyncio.sleep(0.5)
        report(soak, elapsed, sink)
    finally:
        for proc in daemons.values():
            proc.terminate()
            proc.wait(timeout=10)
        server.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=10,
                        help="concurrent SMTP connections (each carries one message)")
    parser.add_argument("--dict-requests", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=2000,
                        help="messages before the baseline of the growth figure")
    parser.add_argument("--src", help="directory holding chatmail_services to run instead")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="chatmail-soak-"))
    try:
        asyncio.run(main_async(args, base))
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(base)], check=False)
        else:
            print(f"logs in {base}")


if __name__ == "__main__":
    main()
