"""Real servers for the integration tests, started on loopback by the tests.

The relay is scripts/local_relay.py: conf/ rendered into a fresh directory,
the daemons as user vmail, Debian's Dovecot with its own base_dir and ports.
These tests need root (Dovecot drops privileges to vmail) and the packages
that scripts/bootstrap installs; without them they fail, never skip.
"""

import imaplib
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from local_relay import LocalRelay  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture
def relay_dir():
    # Not pytest's tmp_path: it lives under a 0700 root directory that the
    # vmail daemons and Dovecot's processes could not enter.
    path = Path(tempfile.mkdtemp(prefix="chatmail-it-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_relay(relay_dir):
    relays = []

    def make(**overrides):
        relay = LocalRelay(relay_dir, overrides=overrides)
        relays.append(relay)
        try:
            return relay.start()
        except RuntimeError:
            for log in sorted(relay_dir.glob("*.log")) + [relay_dir / "dovecot.log", relay_dir / "setup.log"]:
                if log.exists():
                    sys.stderr.write(f"--- {log}\n{log.read_text()[-3000:]}\n")
            raise

    yield make
    for relay in relays:
        relay.stop()


@pytest.fixture
def relay(make_relay):
    return make_relay()


def imap_login(relay, addr, password):
    """Log in with imaplib; returns the connection (caller logs out) or raises."""
    conn = imaplib.IMAP4("127.0.0.1", relay.imap_port, timeout=30)
    try:
        conn.login(addr, password)
    except imaplib.IMAP4.error:
        conn.shutdown()
        raise
    return conn


def login_ok(relay, addr, password) -> bool:
    try:
        imap_login(relay, addr, password).logout()
        return True
    except imaplib.IMAP4.error:
        return False
