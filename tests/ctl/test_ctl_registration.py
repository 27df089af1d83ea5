"""chatmailctl registration and invite: the mode switch and invites on a real files store."""

import io
import re

import pytest
import yaml

from chatmail_services.core.store.registration import InviteUse, open_registration, token_hash
from chatmail_services.core.config import load_config
from chatmail_services.ctl.main import run

NOW = 1_700_000_000
DOMAIN = "chat.example.org"


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "chatmail.yaml"
    path.write_text(yaml.safe_dump({
        "mail_domain": DOMAIN, "mailboxes_dir": str(tmp_path / "mail"),
        "doveauth": {"nocreate_file": str(tmp_path / "nocreate")},
        "web": {"public_url": "https://chat.example.org"}}))
    return str(path)


def ctl(config, *argv):
    out, err = io.StringIO(), io.StringIO()
    status = run(["--config", config, *argv], out, err, now=NOW)
    return status, out.getvalue(), err.getvalue()


def test_every_mode_is_set_and_reported(config):
    assert ctl(config, "registration", "status") == (0, "registration: open\n", "")
    for mode in ("invite", "closed", "open"):
        assert ctl(config, "registration", mode) == (0, f"registration: {mode}\n", "")
        assert ctl(config, "registration", "status")[1] == f"registration: {mode}\n"


def test_the_legacy_switch_file_closes_and_open_removes_it(config, tmp_path):
    ctl(config, "registration", "invite")
    (tmp_path / "nocreate").touch()
    assert ctl(config, "registration", "status")[1] == (
        f"registration: closed ({tmp_path}/nocreate exists on this host; "
        "the relay's mode is invite)\n")
    assert ctl(config, "registration", "open")[1] == "registration: open\n"
    assert not (tmp_path / "nocreate").exists()


def test_invite_create_prints_the_dcaccount_url_last_and_stores_only_a_hash(config, tmp_path):
    ctl(config, "registration", "invite")
    status, out, _ = ctl(config, "invite", "create", "--uses", "3", "--days", "2")
    lines = out.splitlines()
    assert status == 0
    assert re.fullmatch(r"invite [0-9a-f]{16}: 3 uses, expires 2023-11-16 22:13 UTC", lines[0])
    token = re.fullmatch(r"DCACCOUNT:https://chat\.example\.org/new\?token=([A-Za-z0-9_-]{32})",
                         lines[-1]).group(1)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "mail").rglob("*") if p.is_file())
    assert token.encode() not in stored
    registration = open_registration(load_config(config))
    assert registration.use_invite(token_hash(token), NOW) is InviteUse.OK


def test_invite_create_warns_when_the_mode_is_not_invite(config):
    out = ctl(config, "invite", "create")[1]
    assert "note: registration is open" in out


def test_invite_create_can_draw_the_qr_code(config):
    out = ctl(config, "invite", "create", "--qr")[1]
    assert out.splitlines()[-1].startswith("DCACCOUNT:")
    assert len(out.splitlines()) > 20  # the QR code's rows


def test_invite_list_and_revoke(config):
    first = ctl(config, "invite", "create")[1]
    invite_id = first.split()[1].rstrip(":")
    token = first.splitlines()[-1].rpartition("=")[2]
    status, out, _ = ctl(config, "invite", "list")
    assert status == 0 and token not in out
    assert out == f"{invite_id}\t1/1 uses left\texpires 2023-11-21 22:13 UTC\n"
    assert ctl(config, "invite", "revoke", invite_id) == (0, f"revoked {invite_id}\n", "")
    assert ctl(config, "invite", "list")[1] == ""
    status, _, err = ctl(config, "invite", "revoke", invite_id)
    assert status == 1 and "no such invite" in err


@pytest.mark.parametrize("argv", [("--uses", "0"), ("--days", "-1"), ("--uses", "many")])
def test_invite_create_refuses_bad_numbers(config, argv):
    with pytest.raises(SystemExit) as e:
        ctl(config, "invite", "create", *argv)
    assert e.value.code == 2

