"""chatmail-web in the local relay: real HTTPS, Debian's Dovecot, chatmailctl, Chromium.

The relay is scripts/local_relay.py with its web part (scripts/local_web.py):
chatmail-web as vmail over TLS from a test CA, the same chatmail.yaml as
doveauth. The mode is switched with the real chatmailctl console script.
"""

import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from chatmail_services.core.store.registration import token_hash

from .conftest import LocalRelay, login_ok

BIN = Path(sys.executable).parent
PASSWORD = "a-long-secret"
GUARDS_OFF = {"max_load_1m": 1000, "min_available_memory": 0, "min_free_disk_space": 0}


@pytest.fixture
def web_relay(relay_dir):
    relay = LocalRelay(relay_dir, web=True, overrides={
        "doveauth": GUARDS_OFF, "web": {"new_per_minute": 600, "new_burst": 100}})
    try:
        yield relay.start()
    finally:
        relay.stop()


def post(relay, path="/new", data=b"", method="POST"):
    """(status, body) of one HTTPS request that trusts only the relay's test CA."""
    context = ssl.create_default_context(cafile=str(relay.web.ca_file))
    request = urllib.request.Request(relay.web.url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ctl(relay, *argv):
    proc = subprocess.run([str(BIN / "chatmailctl"), "--config", str(relay.config_path), *argv],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def new_invite(relay, uses=1):
    return ctl(relay, "invite", "create", "--uses", str(uses)).splitlines()[-1].rpartition("=")[2]


def new_account(relay, token=None):
    status, body = post(relay, f"/new?token={token}" if token else "/new")
    assert status == 200, body
    return json.loads(body)


def test_credentials_from_new_over_https_log_in_over_imap(web_relay):
    creds = new_account(web_relay)
    assert creds["email"].endswith("@chat.example.org")
    assert login_ok(web_relay, creds["email"], creds["password"])
    assert (web_relay.mailboxes / creds["email"] / "enforceE2EEincoming").exists()
    assert not login_ok(web_relay, creds["email"], "not-the-password")


def test_the_index_in_chromium_shows_a_qr_code_that_decodes_to_the_dcaccount_url(web_relay):
    shot = web_relay.base / "index.png"
    chromium, zbarimg = shutil.which("chromium"), shutil.which("zbarimg")
    assert chromium and zbarimg, "apt install chromium zbar-tools (scripts/bootstrap does)"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--ignore-certificate-errors", "--hide-scrollbars", "--window-size=600,900",
                    f"--screenshot={shot}", web_relay.web.url + "/"],
                   capture_output=True, timeout=120, check=True)
    decoded = subprocess.run([zbarimg, "--raw", "-q", str(shot)], capture_output=True,
                             text=True, timeout=60)
    assert decoded.stdout.strip() == f"DCACCOUNT:{web_relay.web.url}/new"


def test_every_mode_against_dovecot(web_relay, new_addr):
    existing = new_addr()
    assert login_ok(web_relay, existing, PASSWORD)  # open: create-on-login

    assert ctl(web_relay, "registration", "invite") == "registration: invite\n"
    assert not login_ok(web_relay, new_addr(), PASSWORD)
    assert login_ok(web_relay, existing, PASSWORD)
    assert post(web_relay)[0] == 403
    creds = new_account(web_relay, new_invite(web_relay))
    assert login_ok(web_relay, creds["email"], creds["password"])

    assert ctl(web_relay, "registration", "closed") == "registration: closed\n"
    fresh = new_addr()
    assert not login_ok(web_relay, fresh, PASSWORD)
    assert not (web_relay.mailboxes / fresh).exists()
    assert post(web_relay, f"/new?token={new_invite(web_relay)}")[0] == 403
    assert login_ok(web_relay, existing, PASSWORD)
    assert login_ok(web_relay, creds["email"], creds["password"])

    assert ctl(web_relay, "registration", "open") == "registration: open\n"
    assert login_ok(web_relay, new_addr(), PASSWORD)


def test_concurrent_uses_of_a_one_use_invite_create_one_account(web_relay):
    ctl(web_relay, "registration", "invite")
    token = new_invite(web_relay)
    before = set(web_relay.mailboxes.iterdir())
    results, barrier = [], threading.Barrier(10)

    def use():
        barrier.wait()
        results.append(post(web_relay, f"/new?token={token}"))

    threads = [threading.Thread(target=use) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status for status, _ in results) == [200] + [403] * 9
    assert sum(b"used up" in body for _, body in results) == 9
    created = set(web_relay.mailboxes.iterdir()) - before
    creds = [json.loads(b) for s, b in results if s == 200]
    assert [p.name for p in created] == [c["email"] for c in creds]
    logs = "".join(p.read_text() for p in web_relay.base.glob("*.log"))
    assert "chatmail-web" in logs or "listening" in logs
    assert token not in logs and creds[0]["password"] not in logs  # never logged


def test_bad_used_up_and_expired_invites_are_refused(web_relay):
    ctl(web_relay, "registration", "invite")
    assert post(web_relay, "/new?token=guessed-token")[1].startswith(b"This invite is not valid")
    token = new_invite(web_relay)
    new_account(web_relay, token)
    assert b"used up" in post(web_relay, f"/new?token={token}")[1]
    expired = new_invite(web_relay)
    path = web_relay.mailboxes / ".registration" / "invites" / f"{token_hash(expired)}.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps(dict(record, expires=record["created"] - 86400)))
    assert post(web_relay, f"/new?token={expired}") == (403, b"This invite has expired.\n")


def test_a_flood_gets_429_and_a_huge_body_413_over_https_and_metrics_count_them(relay_dir):
    from local_relay import free_port

    from .test_metrics import scrape

    metrics = free_port()
    relay = LocalRelay(relay_dir, web=True, overrides={
        "doveauth": GUARDS_OFF, "web": {"new_per_minute": 1, "new_burst": 3,
                                        "metrics": f"tcp:{metrics}:interface=127.0.0.1"}})
    try:
        relay.start()
        statuses = [post(relay)[0] for _ in range(6)]
        assert statuses == [200, 200, 200, 429, 429, 429]
        context = ssl.create_default_context(cafile=str(relay.web.ca_file))
        with socket.create_connection(("127.0.0.1", relay.web.port), timeout=30) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"POST /new HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n"
                        + b"x" * 65536)
            answer = tls.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert post(relay, "/index.html")[0] == 405  # and the daemon still answers
        figures = scrape(metrics)
        assert figures[("chatmail_web_accounts_created_total", (("mode", "open"),))] == 3
        assert figures[("chatmail_web_new_refusals_total", (("reason", "throttled"),))] == 3
        assert figures[("chatmail_web_requests_total", (("code", "413"), ("page", "other")))] == 1
        assert figures[("chatmail_web_registration_mode", (("mode", "open"),))] == 1
        assert "127.0.0.1" not in repr(figures)
    finally:
        relay.stop()


def test_chatmailctl_as_root_leaves_a_new_mailboxes_dir_to_the_mail_user(tmp_path):
    import os
    import pwd

    import yaml

    config = tmp_path / "chatmail.yaml"
    config.write_text(yaml.safe_dump({"mail_domain": "chat.example.org",
                                      "mailboxes_dir": str(tmp_path / "mail")}))
    proc = subprocess.run([str(BIN / "chatmailctl"), "--config", str(config), "registration",
                           "invite"], capture_output=True, text=True, timeout=60)
    assert (os.geteuid(), proc.returncode) == (0, 0), proc.stderr  # integration tests run as root
    vmail = pwd.getpwnam("vmail")
    for path in (tmp_path / "mail", tmp_path / "mail" / ".registration" / "mode"):
        assert (path.stat().st_uid, path.stat().st_gid) == (vmail.pw_uid, vmail.pw_gid)
