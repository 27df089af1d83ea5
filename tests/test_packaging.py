"""setup.cfg lists packages explicitly (the folder is not the package name)."""

import configparser
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
