#!/usr/bin/env python3
"""What if doveauth's lookups skipped the thread pool? Measured, not guessed.

Starts our doveauth twice on one scratch files store: as shipped, and with
its lookup pool replaced by an inline call on the reactor thread (the
creation pool, which hashes, stays a thread pool). The replacement is made in
this process, before the daemon's own main() runs; nothing under services/
changes. Then `dictload.py passdb-existing` and `userdb` at 10 connections,
alternating between the two daemons `--rounds` times, and prints the medians.

    .venv/bin/python bench/whatif_inline.py [--rounds 3] [--duration 5]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SHIPPED = """
import sys
from services.doveauth.main import main
main(sys.argv[1:])
"""
INLINE = """
from twisted.internet import defer
from services.core import runner
shipped = runner.BlockingPool.run
def run(self, fn, *args, **kwargs):
    if self.pool.name == "doveauth":  # lookups; "doveauth-create" keeps its threads
        return defer.maybeDeferred(fn, *args, **kwargs)
    return shipped(self, fn, *args, **kwargs)
runner.BlockingPool.run = run
""" + SHIPPED


def start(python, config, socket, inline):
    cmd = [python, "-c", INLINE if inline else SHIPPED]
    proc = subprocess.Popen(cmd + ["--config", str(config), "--listen", f"unix:{socket}",
                                   "--log-level", "warn"])
    for _ in range(300):
        if Path(socket).exists():
            return proc
        time.sleep(0.05)
    raise RuntimeError("doveauth did not start")


def load(scenario, socket, pid, accounts, duration):
    out = subprocess.run([sys.executable, str(BENCH / "dictload.py"), scenario, "--socket",
                          str(socket), "--pid", str(pid), "--concurrency", "10", "--duration",
                          str(duration), "--accounts-file", str(accounts), "--json"],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    return result["rps"], result["daemon"]["cpu_us_per_request"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0)
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="whatif-"))
    (base / "mail").mkdir()
    config = base / "chatmail.yaml"
    config.write_text(f"mail_domain: chat.example.org\nmailboxes_dir: {base}/mail\n"
                      f"doveauth: {{nocreate_file: {base}/nocreate, max_load_1m: 1000,\n"
                      "  min_available_memory: 0, min_free_disk_space: 0}\n")
    python = str(Path(sys.executable).parent / "python")
    procs = {mode: start(python, config, base / f"{mode}.socket", mode == "inline")
             for mode in ("shipped", "inline")}
    accounts = base / "accounts.json"
    figures = {(m, s): [] for m in procs for s in ("passdb-existing", "userdb")}
    try:
        load("userdb", base / "shipped.socket", procs["shipped"].pid, accounts, 1)  # accounts
        for _ in range(args.rounds):
            for scenario in ("passdb-existing", "userdb"):
                for mode, proc in procs.items():
                    figures[mode, scenario].append(
                        load(scenario, base / f"{mode}.socket", proc.pid, accounts,
                             args.duration))
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait()
    for (mode, scenario), runs in sorted(figures.items(), key=lambda kv: kv[0][::-1]):
        rps = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{scenario:16s} {mode:8s} {rps:7.0f} req/s  {cpu:6.1f} µs CPU/request  "
              f"(runs: {', '.join(f'{r:.0f}' for r, _ in runs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
