"""Free loopback ports for the servers a test or a local relay starts.

Asking the kernel for port 0 and closing the socket again is racy twice
over: a second ask can return the same port before the first server has
bound it (Dovecot then refuses a duplicate listener; Postfix, given two
services on one address, quietly serves the later one), and a client's
outgoing connection can take the port as its local end in the meantime.
So a port here comes from below Linux's ephemeral range, which outgoing
connections never use, is free when it is handed out, and is never handed
out twice by this process.
"""

import random
import socket

_handed_out = set()
LOWEST = 20000  # above the fixed ports our configs use (10025..10081, 8xxx, 9xxx)


def ephemeral_start(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> int:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, not handed out before by this process."""
    top = ephemeral_start()
    candidates = range(LOWEST, top) if top - LOWEST >= 1000 else range(1024, 65536)
    for _ in range(1000):
        port = random.choice(candidates)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port found in 1000 tries")
