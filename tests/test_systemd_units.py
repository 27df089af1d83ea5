"""systemd/: every unit passes `systemd-analyze verify` without a warning, and keeps the pattern.

verify checks that ExecStart's binary exists, so the units are copied with
/usr/bin/ replaced by this venv's bin/ (where the same console scripts live).
Needs the `systemd` package (scripts/bootstrap installs it); fails without it.
"""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = sorted((ROOT / "systemd").glob("chatmail-*.*"))
SERVICES = [u for u in UNITS if u.suffix == ".service"]
DAEMONS = [u for u in SERVICES if (ROOT / "systemd" / f"{u.stem}.socket").exists()]


def listen_streams(path):
    """Every ListenStream= in order (ConfigParser keeps only the last)."""
    return [line.split("=", 1)[1] for line in path.read_text().splitlines()
            if line.startswith("ListenStream=")]


def test_doveauth_takes_its_http_socket_second_for_dovecot_24():
    unit = ROOT / "systemd" / "chatmail-doveauth.service"
    assert listen_streams(unit.with_suffix(".socket")) == [
        "/run/chatmail/doveauth.socket", "/run/chatmail/doveauth-http.socket"]
    assert read_unit(unit)["Service"]["ExecStart"].endswith(
        "--http-listen systemd:domain=UNIX:index=1")


def read_unit(path):
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       empty_lines_in_values=False)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


def test_systemd_analyze_verify_is_silent(tmp_path):
    assert shutil.which("systemd-analyze"), "install the systemd package (scripts/bootstrap)"
    for unit in UNITS:
        text = unit.read_text().replace("/usr/bin/", f"{Path(sys.executable).parent}/")
        (tmp_path / unit.name).write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           *sorted(p.name for p in tmp_path.iterdir())],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_there_is_a_socket_activated_unit_per_dict_daemon_and_a_timer_for_expiry():
    names = {u.name for u in UNITS}
    assert {"chatmail-doveauth.service", "chatmail-doveauth.socket",
            "chatmail-lastlogin.service", "chatmail-lastlogin.socket",
            "chatmail-expire.service", "chatmail-expire.timer"} <= names


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_services_are_hardened(unit):
    s = read_unit(unit)["Service"]
    assert (s["User"], s["UMask"], s["ProtectSystem"]) == ("vmail", "0077", "strict")
    assert s["ReadWritePaths"].split()[0] == "/home/vmail/mail"
    assert s["NoNewPrivileges"] == "yes" and s["CapabilityBoundingSet"] == ""
    assert "RestrictAddressFamilies" in s and "RuntimeDirectory" in s
    binary = unit.stem.removesuffix("-outgoing").removesuffix("-incoming")
    assert s["ExecStart"].startswith(f"/usr/bin/{binary} --config /etc/chatmail/chatmail.yaml")


@pytest.mark.parametrize("unit", DAEMONS, ids=lambda p: p.name)
def test_daemons_restart_take_their_socket_from_systemd_and_precede_dovecot(unit):
    u = read_unit(unit)
    assert u["Service"]["Restart"] == "always"
    assert " --listen systemd:domain=UNIX:index=0" in u["Service"]["ExecStart"]
    assert "dovecot.service" in u["Unit"]["Before"]
    sock = read_unit(unit.with_suffix(".socket"))
    streams = listen_streams(unit.with_suffix(".socket"))
    assert streams[0] == f"/run/chatmail/{unit.stem[len('chatmail-'):]}.socket"
    assert "PartOf" not in sock["Unit"]  # the socket must outlive a restart


@pytest.mark.parametrize("unit,template", [("dovecot.service", "dovecot.service"),
                                           ("postfix@-.service", "postfix@.service")])
def test_the_drop_ins_for_debians_units_verify_silently(tmp_path, unit, template):
    # Debian's own unit (from the installed dovecot-core / postfix) with our drop-in
    shutil.copy(Path("/lib/systemd/system") / template, tmp_path / template)
    shutil.copytree(ROOT / "systemd" / f"{unit}.d", tmp_path / f"{unit}.d")
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], cwd=tmp_path,
                          env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")
    text = (tmp_path / f"{unit}.d" / "50-chatmail.conf").read_text()
    assert "Restart=on-failure" in text


@pytest.mark.parametrize("name", ["chatmail-doveauth.service", "chatmail-relayd.service"])
def test_doveauth_may_lower_its_creation_threads_priority(name):
    """runner.BlockingPool(nice=, idle=) calls setpriority and sched_setscheduler,
    which `~@resources` denies; an allow line after the deny takes them back
    (systemd.exec, SystemCallFilter)."""
    filters = [line.split("=", 1)[1] for line in (ROOT / "systemd" / name).read_text().splitlines()
               if line.startswith("SystemCallFilter=")]
    assert filters[0] == "@system-service" and "@resources" in filters[1]
    assert filters[2:] == ["setpriority sched_setscheduler"]
