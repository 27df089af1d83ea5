"""SMTP load generator for filtermail, with a reinject sink that checks every message.

Plays Postfix's before-queue proxy client (``smtpd_proxy_filter``): one
connection per message (connect, EHLO, XFORWARD, MAIL FROM with SIZE and
BODY=8BITMIME, RCPT, DATA with dot-stuffing, QUIT). A built-in SMTP sink plays
Postfix's reinject service; after the run every message the filter answered
250 must have arrived exactly once and byte-identical (matched by its
Message-ID, compared by SHA-256), and no refused message may have arrived.

    python3 bench/smtpload.py --filter 127.0.0.1:20080 --sink-port 20025 \\
        --scenario encrypted --size 10K --concurrency 10 --duration 10 --pid PID

Only the Python standard library (asyncio). ``--pid`` reads the daemon's CPU
time and memory from /proc (procstat.py): CPU per message, RSS before
(idle) and after, and VmHWM (peak since start).
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import time

from procstat import own_cpu_seconds, sample

DOMAIN = "chat.example.org"
BOUNDARY = "benchbenchbenchbench"
SINK_LIMIT = 64 << 20
_MESSAGE_ID = re.compile(rb"(?im)^Message-ID:\s*<([^>]+)>")


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].isalpha() else int(text)


def _crc24_table():
    table = []
    for byte in range(256):
        crc = byte << 16
        for _ in range(8):
            crc = (crc << 1) ^ (0x1864CFB if crc & 0x800000 else 0)
        table.append(crc & 0xFFFFFF)
    return table


def crc24(data: bytes) -> int:
    """The armor checksum (RFC 4880 section 6.1), table-driven."""
    table, crc = _crc24_table(), 0xB704CE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ table[(crc >> 16) ^ byte]
    return crc


def armored_seipd(size: int) -> bytes:
    """A structurally valid encrypted OpenPGP message: PKESK v3 + SEIPD v1 of `size` bytes,
    armored with the CRC24 line as OpenPGP implementations write it (the reference
    relay's filter refuses armor without one)."""
    pkesk = b"\xc1\x5a" + bytes([3]) + os.urandom(89)
    body = bytes([1]) + os.urandom(max(size, 32))
    packets = pkesk + b"\xd2\xff" + len(body).to_bytes(4, "big") + body
    lines = base64.encodebytes(packets).decode()
    crc = base64.b64encode(crc24(packets).to_bytes(3, "big")).decode()
    return f"-----BEGIN PGP MESSAGE-----\n\n{lines}={crc}\n-----END PGP MESSAGE-----\n".encode()


def make_body(scenario: str, size: int) -> bytes:
    if scenario == "plaintext":
        text = b"Hello, this is cleartext.\r\n" * max(1, size // 27)
        return b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text
    armored = armored_seipd(size * 3 // 4).replace(b"\n", b"\r\n")
    return (f'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n'
            f'\tboundary="{BOUNDARY}"\r\n\r\n\r\n--{BOUNDARY}\r\n'
            "Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\r\n"
            f"--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + (
        armored + f"\r\n--{BOUNDARY}--\r\n".encode())


def make_message(index: int, sender: str, body: bytes) -> bytes:
    head = (f"From: <{sender}>\r\nTo: <bob@example.net>\r\nSubject: [...]\r\n"
            f"Message-ID: <bench-{index}@{DOMAIN}>\r\nMIME-Version: 1.0\r\n")
    return head.encode() + body


def stuff(message: bytes) -> bytes:
    message = message.replace(b"\r\n.", b"\r\n..")
    return b"." + message if message.startswith(b".") else message


async def read_reply(reader, lines=None) -> bytes:
    """The last line of a reply; with ``lines``, every line's text is appended to it."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if lines is not None:
            lines.append(line[4:].strip().upper())
        if line[3:4] != b"-":
            return line.rstrip()


async def command(reader, writer, line: bytes, expect: bytes = b"2") -> bytes:
    writer.write(line + b"\r\n")
    reply = await read_reply(reader)
    if not reply.startswith(expect):
        raise RuntimeError(f"{line.split(b':')[0].decode()}: {reply.decode()}")
    return reply


async def send_one(host, port, index, sender, body):
    """One message as Postfix's proxy client sends it; returns the final reply."""
    message = make_message(index, sender, body)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await read_reply(reader)
        writer.write(b"EHLO mx.bench.test\r\n")
        ehlo = []
        if not (await read_reply(reader, ehlo)).startswith(b"2"):
            raise RuntimeError("EHLO refused")
        if any(line.startswith(b"XFORWARD") for line in ehlo):  # as Postfix: only if offered
            await command(reader, writer, b"XFORWARD NAME=client.bench.test ADDR=192.0.2.7 "
                                          b"PROTO=ESMTP HELO=client.bench.test")
        mail = f"MAIL FROM:<{sender}> SIZE={len(message)} BODY=8BITMIME".encode()
        reply = await command(reader, writer, mail, b"")
        if not reply.startswith(b"2"):
            return message, reply
        await command(reader, writer, b"RCPT TO:<bob@example.net> NOTIFY=NEVER")
        await command(reader, writer, b"DATA", b"354")
        writer.write(stuff(message))
        writer.write(b".\r\n")
        reply = await read_reply(reader)
        writer.write(b"QUIT\r\n")
        await writer.drain()
        return message, reply
    finally:
        writer.close()


class Sink:
    """Postfix's reinject service, reduced to recording what arrives."""

    def __init__(self):
        self.arrived = {}  # message id -> [sha256, ...]
        self.open = {}  # the serving task of each open connection -> its writer

    async def serve(self, reader, writer):
        self.open[asyncio.current_task()] = writer
        writer.write(b"220 sink.bench.test ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-sink.bench.test\r\n250-SIZE 40000000\r\n250-8BITMIME\r\n"
                                 b"250-SMTPUTF8\r\n250-DSN\r\n250 XFORWARD NAME ADDR PROTO HELO\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    self.record(await reader.readuntil(b"\r\n.\r\n"))
                    writer.write(b"250 2.0.0 Ok: queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    writer.write(b"250 2.0.0 Ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            del self.open[asyncio.current_task()]
        writer.close()

    async def close(self):
        """End the connections the filter keeps open for its next message: each
        task then sees the end of its input and returns. Cancelled instead at
        the loop's end, each would print a CancelledError traceback (Python 3.11)."""
        tasks = list(self.open)
        for writer in self.open.values():
            writer.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    def record(self, data: bytes):
        message = data[:-3]  # the CRLF before "." belongs to the message
        message = message.replace(b"\r\n..", b"\r\n.")
        if message.startswith(b".."):
            message = message[1:]
        found = _MESSAGE_ID.search(message)
        key = found.group(1).decode() if found else "?"
        self.arrived.setdefault(key, []).append(hashlib.sha256(message).hexdigest())


async def run(args):
    sink = Sink()
    server = await asyncio.start_server(sink.serve, "127.0.0.1", args.sink_port,
                                        limit=SINK_LIMIT)
    host, port = args.filter.rsplit(":", 1)
    body = make_body(args.scenario, parse_size(args.size))
    before = sample(args.pid) if args.pid else None
    results, errors, counter = [], [], iter(range(10 ** 9))
    deadline = time.monotonic() + args.duration
    started, cpu_before = time.monotonic(), own_cpu_seconds()

    async def worker():
        while time.monotonic() < deadline:
            index = next(counter)
            if args.requests and index >= args.requests:
                return
            sender = f"u{index % args.senders:06d}@{DOMAIN}"
            t0 = time.monotonic()
            try:
                message, reply = await send_one(host, int(port), index, sender, body)
            except (OSError, RuntimeError) as e:
                errors.append(str(e))
                continue
            results.append((index, time.monotonic() - t0, reply,
                            hashlib.sha256(message).hexdigest()))

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.monotonic() - started
    client_cpu = own_cpu_seconds() - cpu_before
    await asyncio.sleep(0.2)
    after = sample(args.pid) if args.pid else None
    server.close()
    await sink.close()
    report(args, results, errors, elapsed, sink, before, after, client_cpu)


def report(args, results, errors, elapsed, sink, before, after, client_cpu):
    latencies = sorted(r[1] for r in results)

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    codes = {}
    for _, _, reply, _ in results:
        codes[reply[:3].decode()] = codes.get(reply[:3].decode(), 0) + 1
    accepted = {f"bench-{i}@{DOMAIN}": h for i, _, reply, h in results if reply[:1] == b"2"}
    missing = sum(1 for k in accepted if k not in sink.arrived)
    duplicated = sum(1 for k in accepted if len(sink.arrived.get(k, ())) > 1)
    changed = sum(1 for k, h in accepted.items() if sink.arrived.get(k, [h])[0] != h)
    unexpected = sum(1 for k in sink.arrived if k not in accepted)
    n = len(results)
    print(f"scenario  {args.scenario} {args.size}, {args.concurrency} connection(s)")
    print(f"messages  {n} in {elapsed:.2f} s = {n / elapsed:.1f} msg/s")
    if latencies:
        print(f"latency   p50 {pct(50):.2f} ms, p99 {pct(99):.2f} ms, max {latencies[-1]*1000:.2f} ms")
    print(f"replies   {codes}  errors {len(errors)}{' ' + errors[0] if errors else ''}")
    print(f"sink      accepted {len(accepted)}, arrived {len(sink.arrived)}, missing {missing}, "
          f"duplicated {duplicated}, changed {changed}, unexpected {unexpected}")
    if before and after:
        cpu = (after.cpu_seconds - before.cpu_seconds) / max(n, 1) * 1000
        print(f"daemon    CPU {cpu:.2f} ms/message; RSS {before.rss_kib / 1024:.1f} -> "
              f"{after.rss_kib / 1024:.1f} MiB, HWM {after.hwm_kib / 1024:.1f} MiB")
    client_pct = 100 * client_cpu / elapsed
    print(f"client    {client_pct:.1f}% of one CPU, the sink included"
          + (" (saturated: the rate is a lower bound)" if client_pct > 90 else ""))
    ok = not (missing or duplicated or changed or unexpected or errors)
    print("check     " + ("OK" if ok else "FAILED"))
    if args.json:
        print(json.dumps({
            "messages": n, "elapsed_s": round(elapsed, 3), "msg_per_s": round(n / elapsed, 1),
            "latency_ms": {"p50": round(pct(50), 1), "p99": round(pct(99), 1),
                           "max": round(latencies[-1] * 1000, 1)} if latencies else None,
            "replies": codes, "errors": len(errors), "check_ok": ok,
            "client_cpu_pct": round(client_pct, 1),
            "daemon": None if not (before and after) else {
                "cpu_ms_per_message": round(cpu, 2), "rss_before_kib": before.rss_kib,
                "rss_after_kib": after.rss_kib, "hwm_kib": after.hwm_kib}}, sort_keys=True))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", required=True, help="HOST:PORT the filter listens on")
    parser.add_argument("--sink-port", type=int, required=True,
                        help="port for the reinject sink (the filter's `reinject`)")
    parser.add_argument("--scenario", choices=["encrypted", "plaintext"], default="encrypted")
    parser.add_argument("--size", default="10K", help="body size, e.g. 10K, 1M, 25M")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=0, help="stop after N messages")
    parser.add_argument("--senders", type=int, default=1000,
                        help="distinct senders (the rate limit is per sender)")
    parser.add_argument("--pid", type=int, help="the filter's pid, for CPU and memory")
    parser.add_argument("--json", action="store_true", help="also print one JSON result line")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
