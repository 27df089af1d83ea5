"""The listen backlog: a burst of connections waits for accept() instead of failing."""

import errno
import socket

import pytest
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.selectreactor import SelectReactor

from chatmail_services.core.runner import Daemon, with_backlog


@pytest.mark.parametrize("description, expected", [
    ("unix:/run/x.socket:mode=660", "unix:/run/x.socket:mode=660:backlog=1024"),
    ("tcp:10080:interface=127.0.0.1", "tcp:10080:interface=127.0.0.1:backlog=1024"),
    ("tcp:10080:backlog=7", "tcp:10080:backlog=7"),  # the operator's own wins
    ("systemd:domain=UNIX:index=0", "systemd:domain=UNIX:index=0"),  # the unit's Backlog=
])
def test_the_backlog_is_added_where_twisted_takes_it(description, expected):
    assert with_backlog(description, 1024) == expected


def storm(path, count):
    """Connect `count` clients to a listener that accepts none: how many fail."""
    clients, failed = [], 0
    for _ in range(count):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.setblocking(False)
        clients.append(client)
        try:
            client.connect(str(path))
        except OSError as e:
            assert e.errno in (errno.EAGAIN, errno.ECONNREFUSED)
            failed += 1
    for client in clients:
        client.close()
    return failed


def test_a_daemon_listener_holds_a_burst_of_400_connections(tmp_path):
    # the reactor never runs, so nothing is accepted: all wait in the backlog
    reactor = SelectReactor()
    daemon = Daemon(reactor, "test")
    service = daemon.listen(f"unix:{tmp_path}/dict.socket", Factory.forProtocol(Protocol), "x")
    service.startService()
    try:
        assert storm(tmp_path / "dict.socket", 400) == 0
    finally:
        service.port.connectionLost(None)


def test_the_configured_backlog_is_the_one_listened_with(tmp_path):
    reactor = SelectReactor()
    daemon = Daemon(reactor, "test")
    daemon.backlog = 10
    service = daemon.listen(f"unix:{tmp_path}/dict.socket", Factory.forProtocol(Protocol), "x")
    service.startService()
    try:
        assert storm(tmp_path / "dict.socket", 100) > 50
    finally:
        service.port.connectionLost(None)
