#!/usr/bin/env python3
"""Where a Redis-backed dict lookup spends its CPU: client, thread hop, socket.

Measures, one call at a time against a running redis-server, the CPU per
call of redis-py's synchronous client (what the Redis store uses, from the
daemons' thread pools), of redis-py's asyncio client, of a bare socket
round trip (the floor), and of Twisted's deferToThreadPool hop with a no-op
(what every store call pays to leave the reactor thread). Best of 3 runs.
Needs the project's venv (redis, twisted):

    .venv/bin/python bench/redis_client_cost.py --port 6379 [--calls 20000]
"""

import argparse
import asyncio
import resource
import socket
import time

import redis
import redis.asyncio as aredis

KEY = "chatmail-bench:client-cost"


def measure(fn, calls):
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn(calls)
    t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    return calls / (t1 - t0), cpu / calls * 1e6


def report(name, fn, calls):
    runs = [measure(fn, calls) for _ in range(3)]
    rate, cpu = max(r for r, _ in runs), min(c for _, c in runs)
    print(f"{name:42s} {rate:8.0f} calls/s  {cpu:6.1f} µs CPU/call")


def sync_client(port):
    client = redis.Redis(port=port, decode_responses=True)
    return lambda n: [client.hgetall(KEY) for _ in range(n)]


def asyncio_client(port):
    async def loop(n):
        client = aredis.Redis(port=port, decode_responses=True)
        for _ in range(n):
            await client.hgetall(KEY)
        await client.connection_pool.disconnect()
    return lambda n: asyncio.run(loop(n))


def raw_socket(port):
    sock = socket.create_connection(("127.0.0.1", port))
    cmd = f"*2\r\n$7\r\nHGETALL\r\n${len(KEY)}\r\n{KEY}\r\n".encode()

    def loop(n):
        for _ in range(n):
            sock.sendall(cmd)
            sock.recv(4096)
    return loop


def thread_hop(n):
    from twisted.internet import defer, reactor
    from twisted.internet.threads import deferToThreadPool
    from twisted.python.threadpool import ThreadPool

    pool = ThreadPool(1, 4)
    pool.start()

    @defer.inlineCallbacks
    def loop():
        for _ in range(n):
            yield deferToThreadPool(reactor, pool, lambda: None)
        pool.stop()
        reactor.stop()
    reactor.callWhenRunning(loop)
    reactor.run()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--calls", type=int, default=20000)
    args = p.parse_args()
    redis.Redis(port=args.port).hset(KEY, "password", "{SHA512-CRYPT}$6$salt$hash")
    report("redis-py sync HGETALL", sync_client(args.port), args.calls)
    report("redis-py asyncio HGETALL", asyncio_client(args.port), args.calls)
    report("bare socket HGETALL round trip", raw_socket(args.port), args.calls)
    # the reactor runs once per process: one run, not best of 3
    rate, cpu = measure(thread_hop, args.calls)
    print(f"{'Twisted deferToThreadPool no-op hop':42s} {rate:8.0f} calls/s  {cpu:6.1f} µs CPU/call")
    redis.Redis(port=args.port).delete(KEY)


if __name__ == "__main__":
    main()
