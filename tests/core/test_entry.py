"""The one way in: Daemon's wiring helpers and the one-shot tools' entry."""

import io

from twisted.internet.testing import MemoryReactorClock

from chatmail_services.core.dictproto import DictHandler
from chatmail_services.core.entry import EXIT_USAGE, run_tool, tool_parser
from chatmail_services.core.runner import Daemon, parse_args


def test_a_dict_daemon_listens_on_its_section_and_serves_metrics(make_config):
    config = make_config(lastlogin={"metrics": "tcp:0:interface=127.0.0.1"})
    reactor = MemoryReactorClock()
    daemon = Daemon(reactor, "lastlogin")
    daemon.serve_dict(config.lastlogin, DictHandler())
    daemon.startService()
    assert [svc.name for svc in daemon] == ["dict", "metrics"]
    assert [port[0] for port in reactor.unixServers] == ["/run/chatmail/lastlogin.socket"]
    assert len(reactor.tcpServers) == 1


def test_listen_on_the_command_line_replaces_the_configured_one(make_config, tmp_path):
    args = parse_args("x", ["--config", "c.yaml", "--listen", f"unix:{tmp_path}/s"])
    reactor = MemoryReactorClock()
    daemon = Daemon(reactor, "lastlogin", args)
    daemon.serve_dict(make_config().lastlogin, DictHandler())
    daemon.startService()
    assert [port[0] for port in reactor.unixServers] == [f"{tmp_path}/s"]
    assert reactor.tcpServers == []  # metrics are off by default


def test_pools_start_and_stop_with_the_daemon_in_reverse_order_of_wiring():
    daemon = Daemon(MemoryReactorClock(), "doveauth")
    pools = daemon.pool(2), daemon.pool(1, "doveauth-create")
    closed = []
    daemon.on_stop(lambda: closed.append([p.running for p in pools]))
    daemon.startService()
    assert [p.thread_name for p in pools] == ["doveauth", "doveauth-create"]
    assert all(p.running for p in pools)
    daemon.stopService()
    # wired after the pools, closed before them (MultiService stops last-first)
    assert closed == [[True, True]]
    assert not any(p.running for p in pools)


def test_a_tool_with_a_bad_config_answers_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("mail_domain: x.org\nexpire: {delete_mails_after: 0}\n")
    err = io.StringIO()
    ran = []
    status = run_tool("tool", tool_parser("tool", "a tool"), ["--config", str(bad)],
                      lambda args, config: ran.append(config) or 0, err)
    assert (status, ran) == (EXIT_USAGE, [])
    assert err.getvalue() == f"tool: {bad}: expire.delete_mails_after: must be at least 1 (days)\n"


def test_a_tool_with_a_good_config_runs_its_body_with_it(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("mail_domain: x.org\n")
    parser = tool_parser("tool", "a tool")
    parser.add_argument("--flag", action="store_true")
    status = run_tool("tool", parser, ["--config", str(good), "--flag"],
                      lambda args, config: 7 if args.flag and config.mail_domain == "x.org" else 1)
    assert status == 7
