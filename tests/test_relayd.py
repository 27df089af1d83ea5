"""chatmail-relayd: the five long-running daemons built into one process."""

import argparse

import pytest
from twisted.internet.testing import MemoryReactorClock

from chatmail_services import relayd
from chatmail_services.core.runner import run


def build(make_config, tmp_path, **options):
    config = make_config(doveauth={"listen": f"unix:{tmp_path}/doveauth.socket"},
                         filtermail={"dkim": {"verify": False, "sign": None}})
    args = argparse.Namespace(listen=None, web=False, **options)
    return relayd.make_service(config, MemoryReactorClock(), args)


def test_each_daemon_is_built_by_its_own_make_service(make_config, tmp_path):
    host = build(make_config, tmp_path)
    assert [d.name for d in host] == ["doveauth", "lastlogin", "metadata",
                                       "filtermail-outgoing", "filtermail-incoming"]
    doveauth = host.getServiceNamed("doveauth")
    assert doveauth.getServiceNamed("dict").description == f"unix:{tmp_path}/doveauth.socket"


def test_one_daemon_failing_to_listen_fails_the_process(make_config, tmp_path):
    host = build(make_config, tmp_path)
    assert host.exit_status == 0
    host.getServiceNamed("metadata").fatal()
    assert host.exit_status == 1


def test_listen_option_is_refused_with_one_line(tmp_path, capsys):
    config = tmp_path / "chatmail.yaml"
    config.write_text(f"mail_domain: chat.example.org\nmailboxes_dir: {tmp_path}/mail\n")
    assert run("chatmail-relayd", relayd.make_service,
               ["--config", str(config), "--listen", "unix:/tmp/x.socket"],
               relayd._add_arguments) == 1
    assert "each daemon listens where its section's `listen` says" in capsys.readouterr().err


@pytest.mark.parametrize("flag,names", [([], 5), (["--web"], 6)])
def test_web_front_joins_only_when_asked(make_config, tmp_path, flag, names):
    config = make_config(filtermail={"dkim": {"verify": False, "sign": None}})
    args = argparse.Namespace(listen=None, web=bool(flag))
    assert len(list(relayd.make_service(config, MemoryReactorClock(), args))) == names
