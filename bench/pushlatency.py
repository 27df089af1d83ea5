#!/usr/bin/env python3
"""Relay-side push latency: from the end of an LMTP delivery to the POST at the sink.

Starts a complete local relay (scripts/local_relay.py: Debian's Dovecot, our
daemons; needs root like the integration tests) with an in-process HTTPS
notification sink (scripts/notify_sink.py), creates `--accounts` accounts
with one device token each (IMAP LOGIN + SETMETADATA), then delivers
`--rounds` messages to every account over LMTP from `--concurrency` threads.
A round's deliveries all end before the next round starts, so each account
has at most one notification in flight and POSTs match deliveries in order.
`--storage redis://...` runs the relay on that Redis instead of the files
store (FLUSHDB it first: the accounts are created anew).
`--warmup N` rounds go first and are not counted (default 0: the first
POSTs open the notifier's HTTPS connections, which it then keeps).

Latency = the sink's arrival time of the POST minus the time `sendmail()`
returned (Dovecot's final 250). It can be negative: Dovecot runs the Lua
script and waits for our commit before it answers 250, and the notifier
POSTs as soon as the commit is durable. The time from just before MAIL FROM
is reported too, as an upper bound that includes the whole delivery.

    .venv/bin/python bench/pushlatency.py --accounts 100 --rounds 5 --concurrency 10
"""

import argparse
import imaplib
import json
import math
import shutil
import smtplib
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from local_relay import LocalRelay, free_port  # noqa: E402
from notify_sink import NotifySink  # noqa: E402

imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))
PASSWORD = "bench-password-1"


def register(relay, addr):
    conn = imaplib.IMAP4("127.0.0.1", relay.imap_port, timeout=30)
    conn.login(addr, PASSWORD)
    typ, data = conn._simple_command("SETMETADATA", "INBOX",
                                     f'(/private/devicetoken "token-{addr}")')
    conn.logout()
    if typ != "OK":
        raise RuntimeError(f"SETMETADATA failed: {data}")


def deliver(relay, addr, sender):
    msg = f"From: <{sender}>\r\nTo: <{addr}>\r\nSubject: bench\r\n\r\nhello\r\n"
    with smtplib.LMTP("127.0.0.1", relay.lmtp_port) as lmtp:
        start = time.time()
        lmtp.sendmail(sender, [addr], msg)
        end = time.time()
    return addr, start, end


def percentile(ordered, pct):
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def run(args, base, ca_dir):
    sink = NotifySink(free_port(), ca_dir).start()
    for f in ca_dir.iterdir():
        f.chmod(0o644)
    # The load guard would refuse the accounts on a busy benchmark host.
    overrides = {"metadata": {"notify_url": sink.url, "notify_ca_file": str(sink.ca_file)},
                 "doveauth": {"max_load_1m": 1000}}
    if args.storage:
        overrides["storage"] = args.storage
    relay = LocalRelay(base, overrides=overrides)
    relay.start()
    try:
        accounts = [f"bench{i:04d}@{relay.mail_domain}" for i in range(args.accounts)]
        with ThreadPoolExecutor(args.concurrency) as ex:
            list(ex.map(lambda a: register(relay, a), accounts))
        sender = f"sender000@{relay.mail_domain}"
        with ThreadPoolExecutor(args.concurrency) as ex:
            for _ in range(args.warmup):
                list(ex.map(lambda a: deliver(relay, a, sender), accounts))
        warm = args.warmup * len(accounts)
        sink.wait_for(lambda p: len(p) >= warm, timeout=120)
        ends = []
        started = time.time()
        with ThreadPoolExecutor(args.concurrency) as ex:
            for _ in range(args.rounds):
                ends += ex.map(lambda a: deliver(relay, a, sender), accounts)
        elapsed = time.time() - started
        total = len(ends)
        posts = sink.wait_for(lambda p: len(p) >= warm + total, timeout=120)[warm:]
    finally:
        relay.stop()
        sink.stop()
    arrivals = {}
    for post in posts:
        arrivals.setdefault(post.token.removeprefix("token-"), []).append(post.at)
    after_end, after_start = [], []
    for addr, start, end in ends:
        at = arrivals[addr].pop(0)
        after_end.append(at - end)
        after_start.append(at - start)
    return {"deliveries": total, "concurrency": args.concurrency, "warmup_rounds": args.warmup,
            "storage": args.storage or "files",
            "deliveries_per_s": round(total / elapsed, 1), "posts": len(posts),
            "latency_ms": _stats(after_end), "from_mail_from_ms": _stats(after_start)}


def _stats(values):
    ordered = sorted(values)
    return {k: round(percentile(ordered, p) * 1000, 1)
            for k, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--accounts", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=0, help="rounds delivered first, not counted")
    p.add_argument("--storage", help="the relay's `storage` (default: the files store)")
    p.add_argument("--concurrency", type=int, default=10, help="parallel LMTP deliveries")
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="pushlatency-", dir="/tmp"))
    ca_dir = Path(tempfile.mkdtemp(prefix="pushlatency-ca-", dir="/tmp"))
    ca_dir.chmod(0o755)
    try:
        result = run(args, base, ca_dir)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(ca_dir, ignore_errors=True)
    lat = result["latency_ms"]
    print(f"deliveries {result['deliveries']} at concurrency {result['concurrency']}: "
          f"{result['deliveries_per_s']} /s; POSTs {result['posts']}")
    print("push latency after LMTP 250  " + "  ".join(f"{k} {v} ms" for k, v in lat.items()))
    print("push latency after MAIL FROM " + "  ".join(
        f"{k} {v} ms" for k, v in result["from_mail_from_ms"].items()))
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
