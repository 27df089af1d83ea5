"""The request loops of ``dictload.py``: persistent or fresh connections.

Every loop is bounded twice: by a request budget and by a deadline, both
checked before each request, and every request (connect included) by a
timeout. A run therefore ends by itself at ``duration + timeout`` at worst,
whatever the server does.
"""

import asyncio
import multiprocessing
import time
from collections import Counter
from dataclasses import dataclass, field

from dictwire import DictClient
from procstat import own_cpu_seconds

# What a misbehaving or absent server can make a request raise. asyncio's
# TimeoutError and ConnectionError are OSErrors; readline raises ValueError
# for a line over the read limit.
REQUEST_ERRORS = (OSError, EOFError, ValueError, asyncio.IncompleteReadError)
ERROR_PAUSE = 0.05  # after an error, so a dead server is not hammered


class Budget:
    """Hands out at most ``total`` request slots, and none after the deadline."""

    def __init__(self, total, duration):
        self.left = total
        self.deadline = time.monotonic() + duration

    def take(self):
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


@dataclass
class Stats:
    latencies: list = field(default_factory=list)  # seconds, one per reply
    replies: Counter = field(default_factory=Counter)  # O, N, F, other
    errors: Counter = field(default_factory=Counter)  # exception name -> count
    rows: int = 0  # iterate rows received
    elapsed: float = 0.0
    client_cpu: float = 0.0  # this process's CPU seconds during the run

    def record(self, kind, rows, seconds):
        self.replies[kind] += 1
        self.rows += rows
        self.latencies.append(seconds)

    def error(self, exc):
        self.errors[type(exc).__name__] += 1

    @property
    def completed(self):
        return len(self.latencies)


@dataclass(frozen=True)
class Settings:
    target: str
    dict_name: str
    version: str  # "2.3" or "2.4"
    timeout: float


# asyncio.timeout (3.11) rather than wait_for: no extra Task per request,
# which keeps the generator's own CPU cost per request low.
async def connect(settings):
    async with asyncio.timeout(settings.timeout):
        return await DictClient.open(settings.target, settings.dict_name, settings.version)


async def timed_request(client, op, settings, stats, started):
    async with asyncio.timeout(settings.timeout):
        kind, rows = await client.perform(op)
    stats.record(kind, rows, time.perf_counter() - started)


async def persistent_worker(client, next_op, budget, settings, stats):
    """Requests back to back on one connection; reconnect after an error."""
    try:
        while budget.take():
            op = next_op()
            try:
                client = client or await connect(settings)
                await timed_request(client, op, settings, stats, time.perf_counter())
            except REQUEST_ERRORS as exc:
                stats.error(exc)
                client = await discard(client)
                await asyncio.sleep(ERROR_PAUSE)
    finally:
        await discard(client)


async def fresh_worker(next_op, budget, settings, stats):
    """Dovecot's default: connect, hello, one request, close; connect is timed."""
    while budget.take():
        op = next_op()
        client = None
        try:
            started = time.perf_counter()
            client = await connect(settings)
            await timed_request(client, op, settings, stats, started)
        except REQUEST_ERRORS as exc:
            stats.error(exc)
            await asyncio.sleep(ERROR_PAUSE)
        finally:
            await discard(client)


async def discard(client):
    """Close ``client`` if there is one; always returns None."""
    if client is not None:
        await client.close()


async def open_clients(settings, count, stats):
    """Connections for persistent mode, opened before the clock starts."""
    results = await asyncio.gather(
        *(connect(settings) for _ in range(count)), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            stats.error(result)
    return [r if isinstance(r, DictClient) else None for r in results]


async def run_phase(settings, next_op, *, concurrency, fresh, total, duration):
    """Drive ``concurrency`` loops until the budget or the deadline runs out."""
    stats = Stats()
    clients = [None] * concurrency if fresh else await open_clients(settings, concurrency, stats)
    budget = Budget(total, duration)
    cpu_before, started = own_cpu_seconds(), time.perf_counter()
    if fresh:
        loops = [fresh_worker(next_op, budget, settings, stats) for _ in clients]
    else:
        loops = [persistent_worker(c, next_op, budget, settings, stats) for c in clients]
    await asyncio.gather(*loops)
    stats.elapsed = time.perf_counter() - started
    stats.client_cpu = own_cpu_seconds() - cpu_before
    return stats


def run_in_processes(procs, settings, next_op, reseed, *, concurrency, fresh, total, duration):
    """``run_phase`` in ``procs`` forked processes, the connections and the
    request budget shared out between them; one merged Stats. One asyncio
    process saturates a CPU at some 20,000 requests per second, below what a
    fast server answers; several lift that ceiling (on a machine with the
    CPUs to spare). ``reseed(i)`` gives process i its own random sequence."""
    fork = multiprocessing.get_context("fork")
    workers = []
    for i in range(procs):
        reader, writer = fork.Pipe(duplex=False)
        share = dict(concurrency=_share(concurrency, procs, i), fresh=fresh,
                     total=_share(total, procs, i), duration=duration)
        proc = fork.Process(target=_worker, args=(writer, settings, next_op, reseed, i, share))
        proc.start()
        writer.close()
        workers.append((proc, reader))
    parts = []
    for proc, reader in workers:
        try:
            parts.append(reader.recv())
        except EOFError:
            raise RuntimeError(f"load process {proc.pid} died without a result") from None
        proc.join()
    return merged(parts)


def _share(amount, procs, i):
    return amount // procs + (i < amount % procs)


def _worker(writer, settings, next_op, reseed, i, share):
    reseed(i)
    writer.send(asyncio.run(run_phase(settings, next_op, **share)))
    writer.close()


def merged(parts):
    """The Stats of several processes as one: CPU added up, the longest elapsed."""
    out = Stats()
    for part in parts:
        out.latencies += part.latencies
        out.replies.update(part.replies)
        out.errors.update(part.errors)
        out.rows += part.rows
        out.elapsed = max(out.elapsed, part.elapsed)
        out.client_cpu += part.client_cpu
    return out
