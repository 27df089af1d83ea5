"""One measurement of ``bench/compare`` on one side: each phase returns {metric: value}.

Every phase drives a side only through its wire protocol with the existing
load tools (dictload.py, smtpload.py, procstat.py), run as subprocesses so
the same client measures both implementations; the push phases count POSTs
at the shared local sink.
"""

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import procstat

BENCH = Path(__file__).resolve().parent
BACKLOG = 5000


@dataclass
class Tools:
    python: str  # the load tools' interpreter (standard library only)
    duration: float  # seconds per measured cell
    sink: object  # scripts/notify_sink.NotifySink, shared by both sides
    procs: int = 1  # load processes per dict cell (dictload.py --procs)


def _last_json(output, what):
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{what}: no result line in {output[-500:]!r}")


def dictload_cmd(tools, side, scenario, socket, conns, *, pid=None, requests=None, auth=True,
                 procs=1):
    cmd = [tools.python, str(BENCH / "dictload.py"), scenario, "--socket", socket,
           "--concurrency", str(conns), "--duration", str(tools.duration), "--json",
           "--accounts-file", side.accounts_file, "--procs", str(procs)]
    if auth:
        cmd += ["--auth-socket", side.socket("doveauth")]
    if pid:
        cmd += ["--pid", str(pid)]
    if requests:
        cmd += ["--requests", str(requests)]
    return cmd


def run_json(cmd, what, timeout=900):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return _last_json(done.stdout, what)


def _rps(result, expect="O"):
    """req/s, or None (shown as '-') when the server did not answer as expected."""
    answered = sum(result["replies"].get(kind, 0) for kind in expect)
    wrong = result["replies"].get("wrong", 0)  # an answer for another account: never noise
    if result["errors"] or wrong or answered < result["requests"] * 0.99:
        print(f"  warning: {result['scenario']} replies {result['replies']} "
              f"errors {result['error_types']}", file=sys.stderr)
        return None
    return result["rps"]


def dict_phase(scenario, kind, conns, key, expect="O"):
    """A dictload cell against daemon ``kind``: req/s (and daemon µs CPU/request).
    ``expect``: the reply kinds that count as answered (a token lookup of an
    address without tokens is N on our side, an empty O on the reference's)."""

    def phase(side, tools):
        daemon = side.daemons[kind]
        result = run_json(dictload_cmd(tools, side, scenario, daemon.endpoint, conns,
                                       pid=daemon.pid, procs=min(tools.procs, conns)), scenario)
        cpu = (result.get("daemon") or {}).get("cpu_us_per_request")
        # the load processes' CPU: near 100 % each, the rate is the client's
        return {key: _rps(result, expect), f"{key}_cpu_us": cpu,
                f"{key}_client_pct": result["client_cpu_pct"]}

    phase.__name__ = key
    return phase


def setup_accounts(side, tools):
    """1000 accounts (once per session; later runs reuse the accounts file)."""
    run_json(dictload_cmd(tools, side, "userdb", side.socket("doveauth"), 1, requests=1),
             "account setup")
    return {}


def creations(side, tools):
    daemon = side.daemons["doveauth"]
    result = run_json(dictload_cmd(tools, side, "passdb-create", daemon.endpoint, 10,
                                   pid=daemon.pid, requests=5000, auth=False), "creations")
    return {"create10": _rps(result)}


def lookups_during_burst(side, tools):
    """passdb-existing at 10 conns while passdb-create runs at 10 conns: both at once."""
    sock = side.socket("doveauth")
    create = subprocess.Popen(
        dictload_cmd(tools, side, "passdb-create", sock, 10, requests=5000, auth=False),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.3)  # the burst is under way before the lookups start
        lookups = run_json(dictload_cmd(tools, side, "passdb-existing", sock, 10), "burst")
    finally:
        out, _ = create.communicate(timeout=900)
    burst = _last_json(out, "burst creations")
    return {"burst_lookups": _rps(lookups), "burst_creations": _rps(burst)}


def smtpload(tools, side, daemon, size, conns, *, requests=0, duration=None):
    cmd = [tools.python, str(BENCH / "smtpload.py"), "--filter", daemon.endpoint,
           "--sink-port", str(side.ports["reinject_out"]), "--size", size,
           "--concurrency", str(conns), "--pid", str(daemon.pid), "--json",
           "--duration", str(duration or tools.duration)]
    if requests:
        cmd += ["--requests", str(requests)]
    result = run_json(cmd, f"smtpload {size}")
    if not result["check_ok"] or set(result["replies"]) != {"250"}:
        print(f"  warning: filtermail {size}: replies {result['replies']}, "
              f"check {result['check_ok']}", file=sys.stderr)
        result["ok"] = False
    else:
        result["ok"] = True
    return result


def filtermail_10k(side, tools):
    result = smtpload(tools, side, side.daemons["filtermail-outgoing"], "10K", 10)
    return {"fm10k": result["msg_per_s"] if result["ok"] else None,
            "fm10k_cpu_ms": result["daemon"]["cpu_ms_per_message"],
            "fm10k_client_pct": result["client_cpu_pct"]}


def filtermail_25m(side, tools):
    """A fresh filter: one 25 MB message (time, peak RSS), then nine more (RSS after)."""
    daemon = side.start("filtermail-outgoing")
    time.sleep(1.0)
    idle = procstat.sample(daemon.pid)
    one = smtpload(tools, side, daemon, "25M", 1, requests=1, duration=300)
    nine = smtpload(tools, side, daemon, "25M", 1, requests=9, duration=600)
    time.sleep(2.0)  # let whatever the daemon frees be freed
    after = procstat.sample(daemon.pid)
    ok = one["ok"] and nine["ok"]
    return {"fm25_s": one["latency_ms"]["p50"] / 1000 if ok else None,
            "fm25_hwm_mib": one["daemon"]["hwm_kib"] / 1024,
            "fm25x10_rss_mib": after.rss_kib / 1024,
            "fm25x10_over_idle_mib": (after.rss_kib - idle.rss_kib) / 1024}


def idle_rss(side, tools):
    """RSS of each daemon, and the PSS of all of them together (shared pages once)."""
    figures = {f"idle_{kind}": procstat.memory_kib(d.pid)["VmRSS"] / 1024
               for kind, d in side.daemons.items()}
    figures["idle_pss_sum"] = sum(procstat.pss_kib(d.pid) for d in side.daemons.values()) / 1024
    return figures


def settle_sink(sink, quiet=1.0, limit=60.0):
    """Wait until no POST has arrived for ``quiet`` seconds (notifier drained)."""
    deadline = time.monotonic() + limit
    count = -1
    while time.monotonic() < deadline and count != len(sink.posts):
        count = len(sink.posts)
        time.sleep(quiet)


def backlog_drain(side, tools):
    """``BACKLOG`` queued notifications, then metadata starts: POSTs/s at the sink."""
    side.stop("metadata")
    prefix = f"backlog-{uuid.uuid4().hex[:8]}-"
    fill_backlog(side, prefix)
    mark = len(tools.sink.posts)
    started = time.time()
    side.start("metadata")
    posts = tools.sink.wait_for(_counting(prefix, mark, BACKLOG), timeout=600)
    mine = [p.at for p in posts[mark:] if p.token.startswith(prefix)]
    return {"drain_posts_s": (len(mine) - 1) / (max(mine) - min(mine)),
            "drain_total_s": max(mine) - started}


def _counting(prefix, start, wanted):
    """A sink check that looks at each POST once: the sink runs it on every
    POST, holding its lock, and a recount of the whole list each time (5000
    of them) took enough of the sink's CPU to slow the drain it measured."""
    seen = {"next": start, "count": 0}

    def check(posts):
        new = posts[seen["next"]:]
        seen["next"] += len(new)
        seen["count"] += sum(1 for x in new if x.token.startswith(prefix))
        return seen["count"] >= wanted
    return check


def fill_backlog(side, prefix):
    addr = f"backlog@{side.mail.name}"
    if side.name == "reference":
        # Its queue format: one file per item, "<addr>\n<start ts>\n<token>".
        queue = side.mail / "pending_notifications"
        queue.mkdir(exist_ok=True)
        now = int(time.time())
        for i in range(BACKLOG):
            (queue / uuid.uuid4().hex).write_text(f"{addr}\n{now}\n{prefix}{i}")
        return
    code = ("import sys, time\nfrom chatmail_services.core.config import load_config\n"
            "from chatmail_services.core.store import open_store\n"
            "store = open_store(load_config(sys.argv[1])); now = time.time()\n"
            "tokens = [f'{sys.argv[2]}{i}' for i in range(int(sys.argv[3]))]\n"
            "addr = 'backlog01@chat.example.org'  # Redis queues nothing without the account\n"
            "store.accounts.create_account(addr, '{SHA512-CRYPT}$6$bench$x', now)\n"
            "assert store.push.enqueue_push(addr, tokens, now, now + 3600) == len(tokens)\n")
    subprocess.run([side.python(), "-c", code, str(side.config), prefix, str(BACKLOG)],
                   check=True, timeout=600)


def push_latency(python, storage="files"):
    """bench/pushlatency.py (ours only: it starts our whole local relay)."""
    extra = [] if storage == "files" else ["--storage", storage]
    result = run_json([python, str(BENCH / "pushlatency.py"), "--accounts", "100",
                       "--rounds", "5", "--concurrency", "10", *extra], "pushlatency",
                      timeout=1200)
    return {"push_p99_ms": result["latency_ms"]["p99"], "push_p50_ms": result["latency_ms"]["p50"]}
