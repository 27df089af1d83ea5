"""Many IMAP sessions at once over TLS, with plain sockets: for the setup tests and bench/.

imaplib keeps one blocking connection per object and reads greedily; for
hundreds of sessions that wait in IDLE a small line reader over ssl sockets
is simpler and shows exactly what the server sent.
"""

import socket
import ssl
import time

from passlib.hash import sha512_crypt


def client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the relay's test certificate
    return ctx


class Session:
    """One logged-in IMAPS session; `command` waits for its tagged answer."""

    def __init__(self, port: int, addr: str, password: str, ctx=None, timeout=60.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = (ctx or client_context()).wrap_socket(raw)
        self.buf = b""
        self.tag = 0
        self.greeting = self.line()
        self.login_answer = self.command(f'LOGIN "{addr}" "{password}"')

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"server closed the session: {self.buf!r}")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def command(self, text: str) -> list:
        """Send a command; return every line up to and including the tagged answer."""
        self.tag += 1
        tag = f"a{self.tag}".encode()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1].startswith(tag + b" "):
                return lines

    def ok(self, text: str) -> bool:
        return self.command(text)[-1].split()[1] == b"OK"

    def idle(self) -> None:
        self.tag += 1
        self.sock.sendall(f"a{self.tag} IDLE\r\n".encode())
        first = self.line()
        if not first.startswith(b"+"):
            raise ConnectionError(f"IDLE refused: {first!r}")

    def wait_for(self, word: bytes) -> bytes:
        """Read untagged lines until one contains `word` (the socket timeout bounds it)."""
        while True:
            line = self.line()
            if word in line:
                return line

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def open_sessions(port: int, accounts, password: str) -> list:
    ctx = client_context()
    return [Session(port, addr, password, ctx) for addr in accounts]


def make_accounts(store, mailboxes, count: int, password: str, prefix="s"):
    """`count` accounts in `store` (through its Transfer role), as a relay moved
    from the reference has them (SHA512-CRYPT, 5000 rounds): hashing through
    first logins would take minutes."""
    import os
    import pwd

    vmail = pwd.getpwnam("vmail")
    digest = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash(password)
    day = int(time.time() // 86400)
    accounts = []
    for i in range(count):
        addr = f"{prefix}{os.getpid() % 1000:03d}{i:05d}@{mailboxes.name}"
        store.transfer.import_account(addr, digest, day, False)
        for path in (mailboxes / addr, *(mailboxes / addr).iterdir()):
            os.chown(path, vmail.pw_uid, vmail.pw_gid)
        accounts.append(addr)
    return accounts
