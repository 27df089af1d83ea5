#!/usr/bin/env python3
"""Where a daemon's idle memory comes from: RSS after each import, in a fresh interpreter.

For every step (a module, or a daemon's main module) a new interpreter
imports the steps before it and then that one, and reports VmRSS from
/proc/self/status after each; the difference is what that import added on
top of what was already loaded. ``--block`` makes the named top-level
packages unimportable (as if not installed), to see what an optional
dependency costs, e.g. Twisted's TLS support pulling in pyOpenSSL and
cryptography:

    .venv/bin/python bench/importmem.py twisted.internet.reactor
    .venv/bin/python bench/importmem.py --block OpenSSL,cryptography,service_identity \\
        twisted.internet.reactor
    .venv/bin/python bench/importmem.py --daemons     # every daemon's import chain
    .venv/bin/python bench/importmem.py --top 15 services.doveauth.main  # own time/MiB per module

``--top N`` instead runs ``-X importtime`` and tracemalloc over one import and
lists the N modules with the most own import time and the most allocated
memory (tracemalloc counts Python allocations only, not the interpreter's
own or C libraries', so its total is below the RSS growth).
"""

import argparse
import json
import subprocess
import sys

DAEMON_CHAINS = {
    "doveauth": ["services.doveauth.main"],
    "lastlogin": ["services.lastlogin.main"],
    "metadata": ["services.metadata.main"],
    "filtermail": ["services.filtermail.main"],
    "all daemons in one process": ["services.doveauth.main", "services.lastlogin.main",
                                "services.metadata.main", "services.filtermail.main"],
}
COMMON_STEPS = ["twisted.internet.reactor", "twisted.logger", "twisted.application.service",
                "prometheus_client", "services.core.runner", "services.core.store"]

_PROBE = r"""
import importlib, json, sys
blocked = set(sys.argv[1].split(",")) - {""}

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} blocked by importmem")

sys.meta_path.insert(0, Block())

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

out = [("(interpreter)", rss(), len(sys.modules))]
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except ImportError as e:
        out.append((f"{name} (import failed: {e})", rss(), len(sys.modules)))
        break
    out.append((name, rss(), len(sys.modules)))
print(json.dumps(out))
"""


def rss_chain(steps, block=""):
    done = subprocess.run([sys.executable, "-c", _PROBE, block, *steps],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def print_chain(title, steps, block=""):
    print(f"## {title}" + (f" (blocked: {block})" if block else ""))
    previous = None
    for name, mib, modules in rss_chain(steps, block):
        added = "" if previous is None else f"  +{mib - previous:5.1f}"
        print(f"  {mib:6.1f} MiB{added}  {modules:4d} modules  {name}")
        previous = mib


_TOP = r"""
import importlib, sys, tracemalloc
tracemalloc.start(1)
importlib.import_module(sys.argv[1])
snap = tracemalloc.take_snapshot()
by_module = {}
for stat in snap.statistics("filename"):
    name = stat.traceback[0].filename
    by_module[name] = by_module.get(name, 0) + stat.size
total = sum(by_module.values())
print(f"tracemalloc total {total / 2**20:.1f} MiB")
for name, size in sorted(by_module.items(), key=lambda kv: -kv[1])[:int(sys.argv[2])]:
    print(f"  {size / 2**20:6.2f} MiB  {name}")
"""


def print_top(module, count):
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", _TOP, module, str(count)],
                          capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self" not in line:
            own, cumulative, name = line.removeprefix("import time:").split("|")
            rows.append((int(own), int(cumulative), name.strip()))
    total = sum(r[0] for r in rows)
    print(f"## {module}: {len(rows)} modules, {total / 1000:.0f} ms import time (own, summed)")
    for own, cumulative, name in sorted(rows, reverse=True)[:count]:
        print(f"  {own / 1000:7.1f} ms own {cumulative / 1000:7.1f} ms cumulative  {name}")
    print(done.stdout)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("modules", nargs="*", help="import these, in order")
    p.add_argument("--block", default="", help="comma-separated top-level packages to hide")
    p.add_argument("--daemons", action="store_true", help="every daemon's chain, and all in one")
    p.add_argument("--top", type=int, help="-X importtime and tracemalloc of one module")
    args = p.parse_args(argv)
    if args.top:
        for module in args.modules:
            print_top(module, args.top)
        return 0
    if args.modules:
        print_chain(" then ".join(args.modules), args.modules, args.block)
    if args.daemons:
        for block in ("", args.block):
            print_chain("common steps", COMMON_STEPS, block)
            for title, steps in DAEMON_CHAINS.items():
                print_chain(title, steps, block)
            if not args.block:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
