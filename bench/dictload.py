#!/usr/bin/env python3
"""Load generator for Dovecot dict protocol servers (doveauth, lastlogin, ...).

It speaks only the wire protocol (docs/dict-protocol.md) over a UNIX socket or
``tcp:HOST:PORT``, so the same numbers can be taken from our daemons and from
any other implementation. One asyncio process drives up to a few hundred
connections; with ``--pid`` it also reads the daemon's CPU time and memory
from /proc. See bench/README.md for the scenarios and how to read the output.

    dictload.py passdb-existing --socket /run/chatmail/doveauth.socket --concurrency 10
"""

import argparse
import asyncio
import json
import math
import os
import random
import sys

import procstat
import runner
import scenarios
from dictwire import HELLO

SETUP_CONCURRENCY = 10
SETUP_LIMIT = 600.0  # seconds; account creation stops by itself after this
MAX_DURATION = 600.0  # the time bound when only --requests is given
MAX_REQUESTS = 10_000_000  # the count bound when only --duration is given


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", choices=sorted(scenarios.SCENARIOS))
    p.add_argument("--socket", required=True, help="UNIX socket path or tcp:HOST:PORT")
    p.add_argument("--concurrency", type=int, default=1, help="parallel connections")
    p.add_argument("--procs", type=int, default=1,
                   help="load processes sharing the connections (one saturates a CPU)")
    p.add_argument("--fresh", action="store_true", help="one new connection per request")
    p.add_argument("--requests", type=int, help="total requests (default: until --duration)")
    p.add_argument("--duration", type=float, help="seconds (default 5, or 600 with --requests)")
    p.add_argument("--timeout", type=float, default=5.0, help="per request, connect included")
    p.add_argument("--accounts", type=int, default=1000, help="accounts to create first")
    p.add_argument("--accounts-file", help="reuse accounts from FILE, or save new ones there")
    p.add_argument("--auth-socket", help="create accounts through this socket (e.g. for lastlogin)")
    p.add_argument("--domain", default="chat.example.org")
    p.add_argument("--dict", default="", help="dict name in the hello (default per scenario)")
    p.add_argument("--key-template", default="shared/userdb/{user}",
                   help="for 'lookup': fields {user} {password} {ts}")
    p.add_argument("--iterate-path", default="shared/userdb/", help="for 'iterate'")
    p.add_argument("--dovecot", choices=sorted(HELLO), default="2.3",
                   help="hello and begin line flavour")
    p.add_argument("--pid", type=int, help="daemon pid: report its CPU and memory")
    p.add_argument("--seed", type=int, help="random seed, for repeatable addresses")
    p.add_argument("--json", action="store_true", help="also print one JSON result line")
    args = p.parse_args(argv)
    if args.concurrency < 1 or (args.requests is not None and args.requests < 1):
        p.error("--concurrency and --requests must be at least 1")
    if not 1 <= args.procs <= min(args.concurrency, args.requests or args.concurrency):
        p.error("--procs must be at least 1 and at most --concurrency and --requests")
    if args.accounts < 0 or (args.duration is not None and args.duration <= 0):
        p.error("--accounts must not be negative, --duration must be positive")
    if args.pid is not None and not os.path.exists(f"/proc/{args.pid}/stat"):
        p.error(f"--pid {args.pid}: no such process")
    return args


def bounds(args):
    """(total requests, seconds): both finite, whatever was given."""
    total = args.requests or MAX_REQUESTS
    duration = args.duration or (MAX_DURATION if args.requests else 5.0)
    return total, duration


def pick_accounts(args, ctx, uses):
    """Load, or generate and (if wanted) create the accounts a scenario uses."""
    if not uses:
        return None
    if args.accounts_file and os.path.exists(args.accounts_file):
        ctx.accounts = scenarios.load_accounts(args.accounts_file)
        return {"source": "loaded", "accounts": len(ctx.accounts)}
    ctx.accounts = [scenarios.fresh_account(ctx.rng, ctx.domain) for _ in range(args.accounts)]
    if not ctx.accounts or (uses != "existing" and not args.auth_socket):
        return {"source": "generated, not created", "accounts": len(ctx.accounts)}
    setup = asyncio.run(create_accounts(args, ctx.accounts))
    # Saved only when every creation succeeded, so a later run never takes
    # an account the server refused for an existing one.
    if args.accounts_file and setup["replies"].get("O") == len(ctx.accounts):
        scenarios.save_accounts(args.accounts_file, ctx.accounts)
    return setup


async def create_accounts(args, accounts):
    """One passdb lookup per new account: the auth daemon creates on first login."""
    settings = runner.Settings(args.auth_socket or args.socket, "auth", args.dovecot, args.timeout)
    log(f"creating {len(accounts)} accounts via {settings.target} ...")
    stats = await runner.run_phase(
        settings, scenarios.creation_ops(accounts), concurrency=SETUP_CONCURRENCY,
        fresh=False, total=len(accounts), duration=SETUP_LIMIT,
    )
    if stats.replies["O"] != len(accounts):
        log(f"warning: only {stats.replies['O']} of {len(accounts)} creations answered O")
    return {"source": "created", "accounts": len(accounts), "replies": dict(stats.replies),
            "errors": sum(stats.errors.values()), "elapsed_s": round(stats.elapsed, 3)}


def percentile(ordered, pct):
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def summarize(args, scenario, stats):
    ordered = sorted(stats.latencies)
    ms = {f"p{p}": _ms(percentile(ordered, p)) for p in (50, 90, 99)}
    ms["max"] = _ms(ordered[-1] if ordered else None)
    elapsed = stats.elapsed or float("nan")
    return {
        "scenario": scenario.name, "dict": scenario.dict_name, "target": args.socket,
        "mode": "fresh" if args.fresh else "persistent", "concurrency": args.concurrency,
        "dovecot": args.dovecot, "requests": stats.completed, "elapsed_s": round(elapsed, 3),
        "rps": round(stats.completed / elapsed, 1), "latency_ms": ms,
        "replies": {k: stats.replies[k] for k in ("O", "N", "F", "wrong", "other")},
        "errors": sum(stats.errors.values()), "error_types": dict(stats.errors),
        "rows": stats.rows, "client_cpu_pct": round(100 * stats.client_cpu / elapsed, 1),
        "procs": args.procs,
    }


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 3)


def daemon_usage(idle, before, after, completed):
    cpu = after.cpu_seconds - before.cpu_seconds
    return {
        "cpu_s": round(cpu, 3),
        "cpu_us_per_request": round(cpu * 1e6 / completed, 1) if completed else None,
        "cpu_tick_s": procstat.tick_seconds(),
        "rss_idle_kib": idle.rss_kib, "hwm_idle_kib": idle.hwm_kib,
        "rss_loaded_kib": after.rss_kib, "hwm_loaded_kib": after.hwm_kib,
    }


def render(result):
    """The human-readable report, one aspect per line."""
    lat, rep = result["latency_ms"], result["replies"]
    lines = [
        f"scenario  {result['scenario']}  dict {result['dict']}  {result['mode']}"
        f"  connections {result['concurrency']}  target {result['target']}",
        f"requests  {result['requests']} in {result['elapsed_s']} s = {result['rps']} req/s",
        "latency   " + "  ".join(f"{k} {'-' if v is None else v} ms" for k, v in lat.items()),
        f"replies   O {rep['O']}  N {rep['N']}  F {rep['F']}  wrong {rep['wrong']}  "
        f"other {rep['other']}"
        f"  errors {result['errors']} {result['error_types'] or ''}".rstrip(),
    ]
    if result["rows"]:
        lines.append(f"rows      {result['rows']} iterate rows")
    if result["setup"]:
        lines.append(_render_setup(result["setup"]))
    if result["daemon"]:
        lines.append(_render_daemon(result["daemon"]))
    procs = result["procs"]
    lines.append(f"client    {result['client_cpu_pct']}% of one CPU"
                 + (f" in {procs} processes" if procs > 1 else "")
                 + (" (saturated: the rate is a lower bound)"
                    if result["client_cpu_pct"] > 90 * procs else ""))
    return "\n".join(lines)


def _render_setup(setup):
    text = f"accounts  {setup['accounts']} {setup['source']}"
    if setup["source"] == "created":
        text += f" in {setup['elapsed_s']} s, replies {setup['replies']}, errors {setup['errors']}"
    return text


def _render_daemon(d):
    mib = {k: round(v / 1024, 1) for k, v in d.items() if k.endswith("_kib")}
    return (f"daemon    CPU {d['cpu_s']} s = {d['cpu_us_per_request']} us/request"
            f" (tick {d['cpu_tick_s']} s); RSS idle {mib['rss_idle_kib']} MiB"
            f" -> loaded {mib['rss_loaded_kib']} MiB, HWM {mib['hwm_loaded_kib']} MiB")


def log(message):
    print(message, file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    ctx = scenarios.Context(random.Random(args.seed), args.domain, [], args.dict,
                            args.key_template, args.iterate_path)
    scenario = scenarios.build(args.scenario, ctx)  # its ops read ctx.accounts when called
    idle = procstat.sample(args.pid) if args.pid else None
    setup = pick_accounts(args, ctx, scenario.accounts)
    settings = runner.Settings(args.socket, scenario.dict_name, args.dovecot, args.timeout)
    total, duration = bounds(args)
    before = procstat.sample(args.pid) if args.pid else None
    shape = dict(concurrency=args.concurrency, fresh=args.fresh, total=total, duration=duration)
    if args.procs == 1:
        stats = asyncio.run(runner.run_phase(settings, scenario.next_op, **shape))
    else:
        def reseed(i):  # each process its own addresses, repeatable under --seed
            ctx.rng.seed(ctx.rng.getrandbits(64) ^ i)
        stats = runner.run_in_processes(args.procs, settings, scenario.next_op, reseed, **shape)
    result = summarize(args, scenario, stats)
    result["setup"] = setup
    result["daemon"] = None
    if args.pid:
        after = procstat.sample(args.pid)
        result["daemon"] = daemon_usage(idle, before, after, stats.completed)
    print(render(result))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0 if stats.completed else 1


if __name__ == "__main__":
    sys.exit(main())
