"""The dict daemons take the dict protocol of the Dovecot that runs here.

Dovecot 2.3 says `H3` and begins transactions with `B<id>\\t<user>`; Dovecot
2.4 says `H4` and adds a third field to `B`. A tap between the real Dovecot
and the real daemon records what Dovecot sent, and the daemon's effect (a
last-login day written, a METADATA value read back) shows it was accepted.
This module runs on Debian 12 (scripts/test) and Debian 13 (scripts/test-deb13).
"""

import os
import socket
import threading
import time

from chatmail_services.core.days import day_of

from .conftest import imap_login, wait_until
from .test_metadata import set_token

PASSWORD = "a-long-secret"


class DictTap:
    """Takes over a daemon's socket path and forwards to the daemon, recording
    every byte Dovecot sends. The daemon's listening socket keeps working
    under its new name (a renamed UNIX socket is the same socket)."""

    def __init__(self, path):
        self.path, self.sent = path, []  # one bytearray per connection
        self.real = path.with_name(path.name + ".real")
        os.rename(path, self.real)
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        os.chmod(path, 0o666)
        self.server.listen(16)
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(str(self.real))
            except FileNotFoundError:
                # Accepted just before close() gave the daemon its name back:
                # forward this last one there, so the client loses nothing.
                try:
                    upstream.connect(str(self.path))
                except OSError:
                    upstream.close()
                    client.close()
                    continue
            record = bytearray()
            with self.lock:
                self.sent.append(record)
            threading.Thread(target=self._pump, args=(client, upstream, record), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, src, dst, record):
        try:
            while data := src.recv(65536):
                if record is not None:
                    with self.lock:
                        record += data
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def connections(self):
        """What Dovecot sent, as a list of lines per connection."""
        with self.lock:
            return [bytes(r).decode(errors="replace").splitlines() for r in self.sent]

    def close(self):
        self.server.close()
        self.path.unlink()
        os.rename(self.real, self.path)


def expected_forms(relay):
    """(hello prefix, fields of a B line) of the Dovecot that runs here."""
    return ("H4\t", 3) if relay.dovecot_version >= (2, 4) else ("H3\t", 2)


def check_forms(relay, conns, dict_name):
    """Every connection began with this Dovecot's hello; its B lines have its form."""
    hello, begin_fields = expected_forms(relay)
    assert conns and all(lines and lines[0].startswith(hello)
                         and lines[0].endswith("\t" + dict_name) for lines in conns)
    begins = [line for lines in conns for line in lines if line.startswith("B")]
    assert begins and all(len(b.split("\t")) == begin_fields for b in begins)


def test_lastlogin_accepts_this_dovecots_hello_and_begin(relay, new_addr):
    addr = new_addr()
    password = relay.mailboxes / addr / "password"
    today = day_of(time.time())
    imap_login(relay, addr, PASSWORD).logout()
    # the first login's last-login write is asynchronous: let it land first
    assert wait_until(lambda: int(password.stat().st_mtime) == today)
    long_ago = day_of(1_600_000_000)
    os.utime(password, (long_ago, long_ago))
    tap = DictTap(relay.run_dir / "lastlogin.socket")
    written = f"shared/last-login/{addr}"
    try:
        imap_login(relay, addr, PASSWORD).logout()
        assert wait_until(lambda: int(password.stat().st_mtime) == today)
        assert wait_until(lambda: any(line.startswith("S") and written in line
                                      for lines in tap.connections() for line in lines))
        conns = tap.connections()
    finally:
        tap.close()
    check_forms(relay, conns, "lastlogin")


def test_metadata_accepts_this_dovecots_hello_and_begin(relay, new_addr):
    addr = new_addr()
    imap_login(relay, addr, PASSWORD).logout()
    tap = DictTap(relay.run_dir / "metadata.socket")
    try:
        set_token(relay, addr, "a-device-token")
        conn = imap_login(relay, addr, PASSWORD)
        typ, data = conn._simple_command("GETMETADATA", "INBOX", "/private/devicetoken")
        typ, data = conn._untagged_response(typ, data, "METADATA")
        conn.logout()
        conns = tap.connections()
    finally:
        tap.close()
    assert typ == "OK" and b"a-device-token" in b"".join(
        x if isinstance(x, bytes) else b"".join(x) for x in data)
    check_forms(relay, conns, "metadata")
