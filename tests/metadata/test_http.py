"""HttpPoster against a real HTTPS sink (scripts/notify_sink.py).

The poster runs in a child process on the global reactor: Twisted's TLS
layer schedules its writes on the global reactor, so a reactor of the
test's own would never send them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from notify_sink import NotifySink, make_test_ca  # scripts/

from ..redisserver import free_port

POSTER = r"""
import json, sys
from twisted.internet import defer, task
from twisted.web.client import BrowserLikePolicyForHTTPS
from chatmail_services.metadata import http

class CountingPolicy(BrowserLikePolicyForHTTPS):
    created = 0
    def creatorForNetloc(self, hostname, port):
        CountingPolicy.created += 1
        return super().creatorForNetloc(hostname, port)

@defer.inlineCallbacks
def main(reactor, url, ca_file):
    poster = http.HttpPoster(reactor, url, ca_file, 10, 4)
    poster.agent._endpointFactory._policyForHTTPS.policy = CountingPolicy(
        http.SystemAndFileTrust(ca_file))
    statuses = []
    try:
        for token in ("token-one", "token-two", "token-three"):
            statuses.append((yield poster.post(token)))
    except Exception as e:
        statuses.append(repr(e))
    yield poster.close()
    print(json.dumps({"statuses": statuses, "created": CountingPolicy.created}))

task.react(main, sys.argv[1:])
"""


@pytest.fixture
def sink(tmp_path):
    server = NotifySink(free_port(), tmp_path / "ca").start()
    yield server
    server.stop()


def post(sink, ca_file: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", POSTER, sink.url, str(ca_file)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_posts_reuse_one_tls_creator_and_verify_the_sink(sink):
    assert post(sink, sink.ca_file) == {"statuses": [200, 200, 200], "created": 1}
    assert [p.token for p in sink.posts] == ["token-one", "token-two", "token-three"]


def test_a_sink_whose_certificate_is_not_trusted_gets_no_post(sink, tmp_path):
    other_ca, _, _ = make_test_ca(tmp_path / "other-ca")
    [failure] = post(sink, other_ca)["statuses"]
    assert "certificate verify failed" in failure
    assert sink.posts == []
