#!/usr/bin/env python3
"""What one doveauth passdb lookup of an existing account costs, part by part.

Each part runs alone in a loop in this process and is timed in CPU (µs per
call, best of 3): the dict codec (decode, parse, format the reply), the key
split, json.dumps of the reply, the metrics a lookup touches
(prometheus_client), a log call filtered out by the level (twisted.logger),
the store's read of an existing account (files store, page cache warm), the
policy around it, and Twisted's thread-pool hop (bench/redis_client_cost.py's
no-op deferToThreadPool). Then the whole request in-process, without
sockets: DictServerProtocol fed one line at a time over a memory transport,
once with the policy called inline and once through the daemon's real
thread pool, so the sum of the parts can be checked against the whole.

    .venv/bin/python bench/request_cost.py [--calls 20000]
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.core import dictcodec  # noqa: E402
from services.core.config import config_from_dict  # noqa: E402
from services.core.store import open_store  # noqa: E402
from services.doveauth import dictfront, lookups  # noqa: E402
from services.doveauth.policy import AccountPolicy  # noqa: E402

ADDR, PASSWORD = "abcdefghi@chat.example.org", "Passw0rdPassw0rd"
LINE = f'Lshared/passdb/{PASSWORD}"{ADDR}\t{ADDR}'.encode()


def cpu_us(fn, calls):
    best = None
    for _ in range(3):
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        fn(calls)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / calls * 1e6
        best = cpu if best is None else min(best, cpu)
    return best


def loop(body):
    def run(n):
        for _ in range(n):
            body()
    return run


def make_policy(root: Path):
    config = config_from_dict({"mail_domain": "chat.example.org", "mailboxes_dir": str(root),
                               "doveauth": {"max_load_1m": 1000, "min_available_memory": 0,
                                            "min_free_disk_space": 0}})
    store = open_store(config)
    policy = AccountPolicy(config, store.accounts)
    policy.create(ADDR, PASSWORD)  # one real account (hashing happens once, here)
    return policy, store


def parts(policy, store, calls):
    fields = policy.find(ADDR).fields
    histogram = lookups.LATENCY_BY_DB["passdb"]

    def codec():
        cmd = dictcodec.parse_command(dictcodec.decode_line(LINE))
        dictcodec.encode_line(dictcodec.format_ok(dictfront.fields_json(fields)))
        return cmd

    def metrics():  # what a found passdb lookup marks and counts (lookups.py)
        lookups.LAST_SUCCESS.mark()
        lookups.PASSDB_FOUND.inc()
        histogram.observe(0.001)

    log = lookups.AccountLookups.log  # as in the daemon: observers started, level warn
    rest = f'{PASSWORD}"{ADDR}'
    return [
        ("dict codec: decode + parse + format + encode", loop(codec)),
        ("key split (%E unescape)", loop(lambda: dictcodec.split_auth_key(rest))),
        ("json of the reply (fields_json)", loop(lambda: dictfront.fields_json(fields))),
        ("metrics: a mark, a counter, a histogram", loop(metrics)),
        ("one filtered-out log call (debug at warn)", loop(lambda: log.debug("x {a}", a=1))),
        ("store + policy: find() an existing account", loop(lambda: policy.find(ADDR))),
        ("store alone: get_password (read the record)",
         loop(lambda: store.accounts.get_password(ADDR))),
    ]


def whole(policy, calls, threaded):
    """The request through DictServerProtocol, no sockets; returns µs CPU/request."""
    from twisted.internet import defer, reactor
    from twisted.internet.testing import StringTransport

    from services.core.dictproto import DictServerFactory
    from services.core.threads import BlockingPool

    class Inline:
        def run(self, fn, *args, **kwargs):
            return defer.maybeDeferred(fn, *args, **kwargs)

    class Pooled:  # the policy's read in the daemon's thread pool, as before inline reads
        def __init__(self, policy, pool):
            self.policy, self.pool = policy, pool

        def find(self, addr):
            return self.pool.run(self.policy.find, addr)

        def __getattr__(self, name):
            return getattr(self.policy, name)

    if threaded:
        pool = BlockingPool(reactor, 4, "bench")
        pool.startService()
        policy = Pooled(policy, pool)
    else:
        pool = Inline()
    class Waiting(StringTransport):
        """Fires ``waiter`` when the reply is written (no polling)."""
        waiter = None

        def write(self, data):
            super().write(data)
            if self.waiter is not None:
                waiter, self.waiter = self.waiter, None
                waiter.callback(None)

    proto = DictServerFactory(dictfront.AuthDict(policy, pool)).buildProtocol(None)
    transport = Waiting()
    proto.makeConnection(transport)
    proto.dataReceived(b"H2\t0\t0\t\tauth\n")
    result = {}

    @defer.inlineCallbacks
    def drive():
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(calls):
            transport.clear()
            transport.waiter = answered = defer.Deferred()
            proto.dataReceived(LINE + b"\n")
            yield answered
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        result["us"] = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / calls * 1e6
        if threaded:
            pool.stopService()
        reactor.stop()

    reactor.callWhenRunning(drive)
    reactor.run()
    return result["us"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--whole", choices=["inline", "threaded"],
                   help="(internal) measure the whole request in a fresh process")
    args = p.parse_args()
    from twisted.logger import LogLevel

    from services.core.runner import start_logging
    start_logging(LogLevel.warn)
    with tempfile.TemporaryDirectory(prefix="request-cost-") as root:
        policy, store = make_policy(Path(root))
        if args.whole:
            print(json.dumps(whole(policy, args.calls, args.whole == "threaded")))
            return 0
        for name, fn in parts(policy, store, args.calls):
            print(f"{name:48s} {cpu_us(fn, args.calls):7.1f} µs CPU/call")
    import subprocess
    for mode in ("inline", "threaded"):
        out = subprocess.run([sys.executable, __file__, "--calls", str(args.calls), "--whole",
                              mode], capture_output=True, text=True, check=True).stdout
        print(f"{'whole request in-process, policy ' + mode:48s} {float(out):7.1f} µs CPU/call")
    from redis_client_cost import measure, thread_hop
    _, hop = measure(thread_hop, args.calls)
    print(f"{'Twisted deferToThreadPool no-op hop':48s} {hop:7.1f} µs CPU/call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
