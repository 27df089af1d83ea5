"""Hostile dict clients: log lines per 1000 malformed inputs, connect failures in a storm.

Starts chatmail-lastlogin and chatmail-doveauth from a checkout (see soak.py,
`--src`) in a scratch directory, then

- `--inputs N` malformed inputs, each on its own connection as a hostile
  local client would send them: a hello whose dictionary name holds a line
  break and a forged log line, then malformed lines, changes of unknown
  transactions, bad escapes, a first login whose password holds a NUL byte
  or invalid UTF-8, and addresses too long for a file name. It prints the log
  lines the daemons wrote, per 1000 inputs, and whether a forged line reached
  the log on a line of its own;
- `--storm C --rounds R`: R times, C connections opened at once to each dict
  socket (non-blocking connect, no pause); prints how many failed (EAGAIN:
  the listen backlog was full).

    .venv/bin/python bench/hostile.py --inputs 1000 --storm 400 --rounds 5 [--src DIR]
"""

import argparse
import asyncio
import collections
import errno
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from soak import start, wait_until, write_config, free_port

FORGED = "critical: forged by a client"
LONG = "a" * 300 + "@chat.example.org"
HOSTILE = [
    b"H3\t2\t0\t\tauth\x01n" + FORGED.encode() + b"\n",
    b"Sbogus\n", b"Ubogus\n", b"A\n", b"Zunknown\n", b"Lbad\x01escape\tu\n", b"\n",
    b"S77\tshared/last-login/x@chat.example.org\t1\n", b"U78\tshared/x\n",
    b"B1\tx@chat.example.org\nS1\tshared/other/key\tv\nC1\n",
    b"Lshared/passdb/nul\x00password\"abcdefghi@chat.example.org\tu\n",
    b"Lshared/passdb/bad\xff\xfeutf8pw\"abcdefgh1@chat.example.org\tu\n",
    ("Lshared/userdb/" + LONG + "\tu\n").encode(),
    ("Lshared/last-login/" + LONG + "\tu\n").encode(),
    ("B2\t" + LONG + "\nS2\tshared/last-login/" + LONG + "\t1700000000\nC2\n").encode(),
]


async def one_input(path, index):
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b"".join(HOSTILE[i % len(HOSTILE)] for i in range(index, index + 6)))
    writer.write_eof()
    try:
        await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def inputs(sockets, count):
    errors = 0
    for batch in range(0, count, 20):
        results = await asyncio.gather(
            *(one_input(sockets[i % len(sockets)], i) for i in range(batch, min(count, batch + 20))),
            return_exceptions=True)
        errors += sum(isinstance(r, Exception) for r in results)
    return errors


def connected(client, path) -> bool:
    """Start a non-blocking connect; False when the listen backlog is full."""
    try:
        client.connect(str(path))
    except OSError as e:  # UNIX sockets: EAGAIN when the backlog is full
        return e.errno not in (errno.EAGAIN, errno.ECONNREFUSED)
    return True


def storm(path, count):
    clients = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(count)]
    for client in clients:
        client.setblocking(False)
    failed = sum(not connected(client, path) for client in clients)
    time.sleep(0.2)
    for client in clients:
        client.close()
    return failed


def log_lines(base, names):
    return sum(len((base / f"{n}.log").read_bytes().splitlines()) for n in names)


def run(args, base):
    config = write_config(base, free_port(), free_port())
    text = config.read_text().replace(
        "lastlogin:", f'doveauth:\n  listen: "unix:{base}/doveauth.socket:mode=660"\n'
                      f'  nocreate_file: {base}/nocreate\n  max_load_1m: 1000\nlastlogin:')
    config.write_text(text)
    names = ["doveauth", "lastlogin"]
    sockets = [base / f"{n}.socket" for n in names]
    daemons = [start(n, [], config, args.src, base) for n in names]
    try:
        for proc, path in zip(daemons, sockets):
            wait_until(path.exists, proc, path.name)
        time.sleep(0.5)
        if args.inputs:
            before = log_lines(base, names)
            errors = asyncio.run(inputs(sockets, args.inputs))
            time.sleep(1)
            lines = log_lines(base, names) - before
            logs = "".join((base / f"{n}.log").read_text("utf-8", "replace") for n in names)
            forged = sum(1 for line in logs.splitlines() if line.startswith(FORGED))
            shapes = collections.Counter(line[:60] for line in logs.splitlines()[-lines:])
            print("most frequent log lines:", shapes.most_common(4))
            print(f"{args.inputs} hostile inputs ({errors} connection errors): {lines} log lines, "
                  f"{lines * 1000 / args.inputs:.0f} per 1000 inputs; "
                  f"forged lines on a line of their own: {forged}; "
                  f"tracebacks: {logs.count('Traceback')}")
        for path in sockets if args.storm else ():
            failed = [storm(path, args.storm) for _ in range(args.rounds)]
            print(f"storm {path.name}: {args.rounds} x {args.storm} connects at once, "
                  f"failed {sum(failed)} ({failed})")
        if any(p.poll() is not None for p in daemons):
            print("a daemon died")
    finally:
        for proc in daemons:
            proc.terminate()
            proc.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--storm", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--src", help="directory holding chatmail_services to run instead")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="chatmail-hostile-"))
    try:
        run(args, base)
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
