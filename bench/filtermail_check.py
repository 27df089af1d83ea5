"""Time and peak memory of the filtermail verdict on one large encrypted message.

Builds a ~25 MB RFC 3156 message (GnuPG-encrypted random data, or a
hand-made SEIPD cut into 1-octet partial chunks, the worst case for the
packet walk), then judges it with ``outgoing_verdict`` several times and
reports the best wall time and the tracemalloc peak of one extra run (each
run parses the message into a ``Mail`` first, as filtermail does after DATA).

    .venv/bin/python bench/filtermail_check.py [--size MB] [--worst-case]

Run it under ``/usr/bin/time -v`` for the process's maximum RSS.
"""

import argparse
import base64
import os
import subprocess
import tempfile
import time
import tracemalloc

from chatmail_services.filtermail.mail import Envelope, Mail
from chatmail_services.filtermail.policy import Outgoing, outgoing_verdict
from chatmail_services.filtermail.smtp import reply_for

SENDER, RCPT = "alice@chat.example.org", "bob@example.net"
BOUNDARY = "YFrteb74qSXmggbOxZL9dRnhymywAi"


def gnupg_armored(size: int) -> bytes:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "GNUPGHOME": home}
        gpg = ["gpg", "--batch", "--pinentry-mode", "loopback", "--trust-model", "always"]
        subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", RCPT,
                        "future-default", "default", "never"], env=env, check=True,
                       capture_output=True)
        armored = subprocess.run([*gpg, "-a", "-e", "-r", RCPT, "--compress-algo", "none"],
                                 input=os.urandom(size), env=env, check=True,
                                 capture_output=True).stdout
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False)
    return armored


def worst_case_armored(size: int) -> bytes:
    """PKESK, then a SEIPD whose body after the first 512 octets is 1-octet chunks."""
    pkesk = b"\xc1\x5a" + bytes([3]) + os.urandom(89)
    seipd = bytearray(b"\xd2\xe9" + bytes([1]) + os.urandom(511))
    seipd += b"\xe0\x00" * (size // 2) + b"\x00"
    body = base64.encodebytes(pkesk + bytes(seipd)).decode()
    return f"-----BEGIN PGP MESSAGE-----\n\n{body}-----END PGP MESSAGE-----\n".encode()


def rfc3156(armored: bytes) -> bytes:
    head = (f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: [...]\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n'
            f'\tboundary="{BOUNDARY}"\r\n\r\n\r\n--{BOUNDARY}\r\n'
            "Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\r\n"
            f"--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n\r\n")
    armored = armored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return head.encode() + armored + f"\r\n--{BOUNDARY}--\r\n".encode()


POLICY = Outgoing.of("chat.example.org")


def judge(message):
    return outgoing_verdict(Mail(Envelope(SENDER, rcpts=[(RCPT, ())]), message), POLICY)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=18.5,
                        help="plaintext MB (18.5 MB gives a ~25 MB message)")
    parser.add_argument("--worst-case", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    size = int(args.size * 1024 * 1024)
    armored = worst_case_armored(size) if args.worst_case else gnupg_armored(size)
    message = rfc3156(armored)
    del armored
    timings = []
    for _ in range(args.runs):
        start = time.perf_counter()
        verdict = judge(message)
        timings.append(time.perf_counter() - start)
    tracemalloc.start()
    judge(message)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    answer = str(reply_for(verdict)) if hasattr(verdict, "text") else "accepted"
    detail = getattr(verdict, "text", "")
    print(f"message {len(message) / 2**20:.1f} MiB, verdict {answer!r} "
          f"({verdict.reason}{': ' + detail if detail else ''})")
    print(f"best of {args.runs}: {min(timings) * 1000:.0f} ms, "
          f"peak allocated during one verdict: {peak / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
