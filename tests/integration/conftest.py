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
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from local_relay import LocalRelay  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that used a local relay gets the tails of its logs in
    its report: the relay's directory is gone once its fixture ends, and a
    failure seen only in CI must still say what Postfix or Dovecot logged."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, LocalRelay):
            report.sections.append((f"relay {name}: log tails", relay_log_tails(value)))


def relay_log_tails(relay, limit=4000) -> str:
    logs = [path for path in sorted(relay.base.glob("*.log")) + sorted(relay.base.glob("*.stderr"))
            if path.name != "setup.log"]  # setup's own output, not the run's
    if relay.mode:
        logs.append(relay.mail.dir / "postfix.log")
    parts = []
    for path in logs:
        if path.is_file():
            text = path.read_text(errors="replace")
            parts.append(f"--- {path.name}\n{text[-limit:]}")
    return "\n".join(parts)


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


def wait_until(check, timeout=20.0) -> bool:
    """Whether `check()` is true within `timeout` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()
