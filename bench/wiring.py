#!/usr/bin/env python3
"""Issue 15 figures on Debian's Dovecot: the operator's install before and after `chatmailctl setup`.

Each run starts a local relay (scripts/local_relay.py: a stock Debian tree,
`chatmailctl setup --root`, our daemons; needs root like the integration
tests) with accounts made directly in the store (SHA512-CRYPT, 5000 rounds).

    logins   LOGIN latency, p50/p99 of --count logins from 10 threads, for
             "before" (the tree set back to stock with `setup --undo`, then the
             README's old wiring: 90-chatmail.conf and 91-chatmail-metadata.conf
             of --before-rev (the last commit before setup), so Debian's PAM passdb runs first) and "after" (setup)
    memory   RSS and PSS of all Dovecot processes with --sessions TLS sessions in
             IDLE, with hibernation (setup.imap_hibernate_after 5 s) and without (0)
    idle     LMTP delivery to the IDLE notification of the last of --sessions
             sessions, in imap processes and again once they are hibernated

    .venv/bin/python bench/wiring.py logins --count 100
    .venv/bin/python bench/wiring.py memory --sessions 300
    .venv/bin/python bench/wiring.py idle --sessions 200 --rounds 5
"""

import argparse
import imaplib
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from imap_sessions import make_accounts, open_sessions  # noqa: E402
from local_relay import LocalRelay  # noqa: E402

from chatmail_services.core.config import load_config  # noqa: E402
from chatmail_services.core.store import open_store  # noqa: E402

PASSWORD = "bench-password-1"


def relay_with_accounts(count: int, **kwargs):
    relay = LocalRelay(Path(tempfile.mkdtemp(prefix="chatmail-bench-", dir="/tmp")), **kwargs)
    relay.render()
    store = open_store(load_config(relay.config_path))
    try:
        accounts = make_accounts(store, relay.mailboxes, count, PASSWORD, prefix="b")
    finally:
        store.close()
    return relay, accounts


def start(relay):
    relay.apply_sysctl()  # as setup does on a server
    for name in ("doveauth", "lastlogin", "metadata"):
        relay.start_daemon(name)
    relay.start_dovecot()


def finish(relay):
    relay.stop()
    shutil.rmtree(relay.base, ignore_errors=True)


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# -- logins -------------------------------------------------------------------

def old_wiring(relay, rev: str) -> None:
    """Back to Debian's stock tree, then the README's wiring of `rev` copied in by hand."""
    subprocess.run([str(Path(sys.executable).parent / "chatmailctl"), "--config",
                    str(relay.config_path), "setup", "--root", str(relay.base), "--undo"],
                   check=True, capture_output=True)
    for name, where in (("90-chatmail.conf", "conf.d"), ("91-chatmail-metadata.conf", "conf.d"),
                        ("chatmail-auth.conf.ext", "."), ("chatmail-push.lua", ".")):
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:conf/dovecot/{name}"],
                              check=True, capture_output=True, text=True).stdout
        (relay.dovecot_dir / where / name).write_text(relay.localize(text))
    # the old wiring had no imaps limits or protocols line: the stock ones
    with open(relay.dovecot_dir / "conf.d" / "99-local-relay.conf", "a") as f:
        f.write("protocols = imap lmtp\n")


def time_logins(relay, accounts, threads=10):
    def one(addr):
        conn = imaplib.IMAP4("127.0.0.1", relay.imap_port, timeout=60)
        t0 = time.perf_counter()
        conn.login(addr, PASSWORD)
        elapsed = time.perf_counter() - t0
        conn.logout()
        return elapsed

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, accounts))


def logins(args):
    for label in ("before", "after"):
        # auth_verbose: each passdb that fails a login names itself in the log
        relay, accounts = relay_with_accounts(args.count, dovecot_extra="auth_verbose = yes\n")
        try:
            if label == "before":
                old_wiring(relay, args.before_rev)
            start(relay)
            times = time_logins(relay, accounts, args.threads)
            pam = relay.dovecot_log.read_text(errors="replace").count("pam(")
        finally:
            finish(relay)
        print(f"logins {label} ({args.threads} at once): n={len(times)} p50={percentile(times, 0.5) * 1000:.1f} ms "
              f"p99={percentile(times, 0.99) * 1000:.1f} ms (log lines naming pam: {pam})")


# -- memory -------------------------------------------------------------------

def dovecot_processes(master_pid: int) -> list:
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [master_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def memory_of(pids) -> dict:
    total = {"Rss": 0, "Pss": 0}
    names = {}
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        names[name] = names.get(name, 0) + 1
        for line in rollup:
            key, _, value = line.partition(":")
            if key in total:
                total[key] += int(value.split()[0])
    return {"rss_mib": total["Rss"] / 1024, "pss_mib": total["Pss"] / 1024, "processes": names}


def idle_sessions(relay, accounts):
    sessions = open_sessions(relay.imaps_port, accounts, PASSWORD)
    for s in sessions:
        s.ok("SELECT INBOX")
        s.idle()
    return sessions


def memory(args):
    for hibernate in (5, 0):
        relay, accounts = relay_with_accounts(
            args.sessions, overrides={"setup": {"imap_hibernate_after": hibernate}})
        try:
            start(relay)
            sessions = idle_sessions(relay, accounts)
            time.sleep(hibernate + 10)
            found = memory_of(dovecot_processes(relay.procs["dovecot"].pid))
            for s in sessions:
                s.close()
        finally:
            finish(relay)
        print(f"memory, {args.sessions} IDLE sessions, hibernation after {hibernate} s: "
              f"RSS sum {found['rss_mib']:.0f} MiB, PSS sum {found['pss_mib']:.0f} MiB, "
              f"processes {found['processes']}")


# -- idle ---------------------------------------------------------------------

def notification_times(relay, session, addr, rounds):
    times = []
    for n in range(rounds):
        with smtplib.LMTP("127.0.0.1", relay.lmtp_port) as lmtp:
            t0 = time.perf_counter()
            lmtp.sendmail("bench@example.net", [addr], f"Subject: {n}\r\n\r\nhi\r\n".encode())
        session.wait_for(b"EXISTS")
        times.append(time.perf_counter() - t0)
    return times


def idle(args):
    relay, accounts = relay_with_accounts(args.sessions)
    try:
        start(relay)
        sessions = idle_sessions(relay, accounts)
        last, addr = sessions[-1], accounts[-1]
        awake = notification_times(relay, last, addr, args.rounds)
        time.sleep(40)  # past setup.imap_hibernate_after (30 s): all sessions hibernated
        hibernated = notification_times(relay, last, addr, args.rounds)
        inotify = "Inotify instance limit" in relay.dovecot_log.read_text(errors="replace")
        for s in sessions:
            s.close()
    finally:
        finish(relay)
    for label, times in (("in imap processes", awake), ("hibernated", hibernated)):
        print(f"idle, session {args.sessions} of {args.sessions}, {label}: "
              f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
              f"over {len(times)} deliveries (inotify limit hit: {inotify})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("logins")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--threads", type=int, default=10, help="logins at once")
    # the last commit before `chatmailctl setup`: its README wiring is the "before"
    p.add_argument("--before-rev", default="3e6045c2", help="git revision of the old wiring")
    sub.add_parser("memory").add_argument("--sessions", type=int, default=300)
    p = sub.add_parser("idle")
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    {"logins": logins, "memory": memory, "idle": idle}[args.what](args)


if __name__ == "__main__":
    main()
