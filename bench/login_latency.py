"""IMAP LOGIN latency through the whole auth path of the installed Dovecot.

Starts the local relay (scripts/local_relay.py: Dovecot 2.3 with the dict
passdb on Debian 12, Dovecot 2.4 with the Lua passdb and doveauth's HTTP
front-end on Debian 13), creates one account, then times --logins sequential
LOGIN + LOGOUT round trips on fresh connections with imaplib and prints p50
and p99. Needs root (as the integration tests); in the Debian 13 chroot:

    .venv/bin/python bench/login_latency.py
    scripts/in-deb13 sh -c 'scripts/bootstrap && .venv/bin/python bench/login_latency.py'
"""

import argparse
import imaplib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from chatmail_services.ctl.setupcompose import DOVECOT_SETS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from local_relay import LocalRelay  # noqa: E402

ADDR, PASSWORD = "benchlogi@chat.example.org", "a-bench-password"


def login(port):
    conn = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    conn.login(ADDR, PASSWORD)
    conn.logout()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=100)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="chatmail-bench-", dir="/tmp"))
    relay = LocalRelay(base)
    try:
        relay.start()
        login(relay.imap_port)  # creates the account; not measured
        times = []
        for _ in range(args.logins):
            start = time.perf_counter()
            login(relay.imap_port)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        relay.stop()
        shutil.rmtree(base, ignore_errors=True)
    times.sort()
    version = ".".join(map(str, relay.dovecot_version))
    conf_set = DOVECOT_SETS[version].snippets  # the set `chatmailctl setup` composed
    print(f"Dovecot {version} (conf/{conf_set}): {args.logins} sequential LOGIN+LOGOUT, "
          f"p50 {times[len(times) // 2]:.1f} ms, p99 {times[len(times) * 99 // 100]:.1f} ms, "
          f"max {times[-1]:.1f} ms")


if __name__ == "__main__":
    main()
