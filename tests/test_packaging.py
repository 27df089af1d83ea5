"""setup.cfg lists packages explicitly (the folder is not the package name)."""

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_of_services_is_listed_in_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    found = {
        "chatmail_services" + ".".join([""] + list(p.parent.relative_to(ROOT / "services").parts))
        for p in (ROOT / "services").rglob("__init__.py")
    }
    assert found - listed == set(), "add these to [options] packages in setup.cfg"


def test_console_scripts_point_at_existing_mains():
    import importlib

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines():
        name, target = (s.strip() for s in line.split("="))
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_daemons_that_serve_no_http_do_not_load_twisted_web():
    """core/website.py: /metrics and the Lua front-end bring twisted.web only
    when they are served (3.8 MiB of idle RSS otherwise)."""
    probe = ("import sys\n"
             "import chatmail_services.doveauth.main, chatmail_services.lastlogin.main\n"
             "import chatmail_services.filtermail.main, chatmail_services.metadata.main\n"
             "print(sorted(m for m in sys.modules if m.startswith('twisted.web')))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
