#!/usr/bin/env python3
"""Run the dict benchmark matrix against one server and print a Markdown table.

Each cell is one ``dictload.py --json`` run in its own process: passdb lookups
of existing accounts at 1, 10 and 50 connections, persistent and fresh (one
connection per request, as Dovecot does), account creation, userdb lookups,
and, given its socket, the lastlogin transaction. Accounts are created once,
by the first run, and reused from a temporary file by the others.

    report.py --socket /run/chatmail/doveauth.socket --pid "$(pidof -s ...)"
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

DICTLOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dictload.py")
RUN_GRACE = 660  # seconds beyond --duration: account setup (600) plus slack

# (scenario, connections, fresh, which server: "auth" or "lastlogin")
MATRIX = [
    ("passdb-existing", 1, False, "auth"),
    ("passdb-existing", 10, False, "auth"),
    ("passdb-existing", 50, False, "auth"),
    ("passdb-existing", 1, True, "auth"),
    ("passdb-existing", 10, True, "auth"),
    ("passdb-existing", 50, True, "auth"),
    ("passdb-create", 10, False, "auth"),
    ("userdb", 10, False, "auth"),
    ("lastlogin", 10, False, "lastlogin"),
    ("lastlogin", 10, True, "lastlogin"),
]

HEADER = ("| scenario | mode | conns | requests | req/s | p50 ms | p90 ms | p99 ms | max ms"
          " | O / N / F / wrong / err | daemon CPU µs/req | daemon RSS idle → loaded MiB |")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--socket", required=True, help="auth dict socket (UNIX path or tcp:HOST:PORT)")
    p.add_argument("--pid", type=int, help="pid of the server behind --socket")
    p.add_argument("--lastlogin-socket", help="lastlogin dict socket; its rows are skipped without")
    p.add_argument("--lastlogin-pid", type=int, help="pid of the server behind --lastlogin-socket")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    p.add_argument("--create-max", type=int, default=5000,
                   help="cap on accounts passdb-create may add per cell")
    p.add_argument("--accounts", type=int, default=1000, help="existing accounts to create first")
    p.add_argument("--domain", default="chat.example.org")
    p.add_argument("--dovecot", default="2.3", choices=("2.3", "2.4"))
    p.add_argument("--json-out", help="also write every run's JSON result to FILE")
    return p.parse_args(argv)


def command(args, cell, accounts_file):
    """The dictload.py command line for one cell of the matrix."""
    scenario, conns, fresh, server = cell
    socket, pid = server_of(args, server)
    cmd = [sys.executable, DICTLOAD, scenario, "--socket", socket, "--json",
           "--concurrency", str(conns), "--duration", str(args.duration),
           "--accounts", str(args.accounts), "--accounts-file", accounts_file,
           "--domain", args.domain, "--dovecot", args.dovecot]
    cmd += ["--fresh"] if fresh else []
    cmd += ["--pid", str(pid)] if pid else []
    cmd += ["--requests", str(args.create_max)] if scenario == "passdb-create" else []
    cmd += ["--auth-socket", args.socket] if server == "lastlogin" else []
    return cmd


def server_of(args, server):
    if server == "lastlogin":
        return args.lastlogin_socket, args.lastlogin_pid
    return args.socket, args.pid


def run_cell(cmd, duration):
    """One dictload run -> its JSON result, or None when it printed none."""
    print("running:", " ".join(cmd[1:]), file=sys.stderr, flush=True)
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True,
                              timeout=duration + RUN_GRACE, check=False)
    except subprocess.TimeoutExpired:
        return None
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None


def row(cell, result):
    scenario, conns, fresh, _ = cell
    mode = "fresh" if fresh else "persistent"
    if result is None:
        return f"| {scenario} | {mode} | {conns} | run failed |" + " |" * 8
    lat, rep, d = result["latency_ms"], result["replies"], result["daemon"]
    cells = [scenario, mode, conns, result["requests"], result["rps"],
             *(_num(lat[k]) for k in ("p50", "p90", "p99", "max")),
             f"{rep['O']} / {rep['N']} / {rep['F']} / {rep.get('wrong', 0)} / "
             f"{result['errors'] + rep['other']}",
             _num(d and d["cpu_us_per_request"]), _rss(d)]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _num(value):
    return "-" if value is None else value


def _rss(daemon):
    if not daemon:
        return "-"
    idle, loaded = daemon["rss_idle_kib"] / 1024, daemon["rss_loaded_kib"] / 1024
    return f"{idle:.1f} → {loaded:.1f}"


def preamble(args):
    return [
        f"Dict benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, host {platform.node()}"
        f" ({os.cpu_count()} CPUs, Python {platform.python_version()}), Dovecot {args.dovecot}"
        f" wire, {args.duration:g} s per cell.",
        f"auth socket `{args.socket}` (pid {args.pid or '-'})"
        + (f", lastlogin socket `{args.lastlogin_socket}` (pid {args.lastlogin_pid or '-'})"
           if args.lastlogin_socket else "") + ".",
        "",
        HEADER,
        "|" + "---|" * HEADER.count(" | ") + "---|",
    ]


def main(argv=None):
    args = parse_args(argv)
    cells = [c for c in MATRIX if c[3] == "auth" or args.lastlogin_socket]
    results = []
    with tempfile.TemporaryDirectory(prefix="dictbench-") as tmp:
        accounts_file = os.path.join(tmp, "accounts.json")
        for cell in cells:
            results.append(run_cell(command(args, cell, accounts_file), args.duration))
    print("\n".join(preamble(args) + [row(c, r) for c, r in zip(cells, results)]))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
