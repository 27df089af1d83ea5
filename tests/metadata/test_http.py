"""HttpPoster (metadata/http.py) against a real HTTPS sink (scripts/notify_sink.py),
on a reactor of the test's own and real threads."""

import socket
import threading

import pytest
from twisted.internet import defer

from chatmail_services.core.runner import BlockingPool
from chatmail_services.metadata.http import HttpPoster

from notify_sink import NotifySink, _Handler, make_test_ca  # scripts/

from ..ownreactor import on_reactor
from ..redisserver import free_port


@pytest.fixture
def sink(tmp_path):
    server = NotifySink(free_port(), tmp_path / "ca").start()
    yield server
    server.stop()


def post_all(url, ca_file, tokens, timeout=10.0):
    """POST each token in turn: the status codes, or the exception each failed with."""
    def run(reactor):
        pool = BlockingPool(reactor, 4, "push")
        pool.startService()
        poster = HttpPoster(reactor, url, str(ca_file), timeout, pool)

        @defer.inlineCallbacks
        def each():
            answers = []
            for token in tokens:
                try:
                    answers.append((yield poster.post(token)))
                except Exception as e:
                    answers.append(e)
            yield poster.close()
            pool.stopService()
            return answers
        return each()
    return on_reactor(run)


def test_posts_share_one_kept_alive_verified_connection(sink):
    sink.status_for["gone-token"] = 410
    tokens = ["token-one", "token-two", "gone-token"]
    assert post_all(sink.url, sink.ca_file, tokens) == [200, 200, 410]
    assert [p.token for p in sink.posts] == tokens
    assert sink.connections == 1


def test_a_sink_whose_certificate_is_not_trusted_gets_no_post(sink, tmp_path):
    other_ca, _, _ = make_test_ca(tmp_path / "other-ca")
    [failure] = post_all(sink.url, other_ca, ["token"])
    assert "certificate verify failed" in str(failure).lower()
    assert sink.posts == []


class _ClosingHandler(_Handler):
    """Closes each connection after its answer without saying so, as a server
    closes a kept-alive connection that idled past its limit."""

    def do_POST(self):
        super().do_POST()
        self.close_connection = True


def test_a_kept_alive_connection_the_server_closed_is_replaced(tmp_path):
    server = NotifySink(free_port(), tmp_path / "ca")
    server.handler = _ClosingHandler
    server.start()
    try:
        tokens = ["first", "second", "third"]
        assert post_all(server.url, server.ca_file, tokens) == [200, 200, 200]
        assert [p.token for p in server.posts] == tokens
        assert server.connections == 3
    finally:
        server.stop()


def test_a_service_that_never_answers_times_out(tmp_path):
    ca_file, _, _ = make_test_ca(tmp_path / "ca")
    with socket.socket() as silent:  # connects, then says nothing: no TLS handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"https://localhost:{silent.getsockname()[1]}/notify"
        [failure] = post_all(url, ca_file, ["token"], timeout=0.2)
    assert isinstance(failure, (defer.TimeoutError, TimeoutError, socket.timeout)), failure


@pytest.mark.parametrize("url, ca_file, key", [
    ("ftp://push.example.org/", None, "metadata.notify_url"),
    ("https://push.example.org/", "missing.pem", "metadata.notify_ca_file"),
])
def test_a_bad_url_or_ca_file_fails_at_start_naming_the_key(tmp_path, url, ca_file, key):
    with pytest.raises(ValueError, match=key):
        HttpPoster(None, url, ca_file and str(tmp_path / ca_file), 1.0, None)


def test_a_post_that_waited_out_its_timeout_for_a_thread_is_not_sent(tmp_path):
    """One thread, held by a service that accepts but never answers: the POST
    queued behind it times out, and is not sent when the thread frees up."""
    ca_file, _, _ = make_test_ca(tmp_path / "ca")
    accepted = []
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.settimeout(0.1)

        def accept_all():
            while not done:
                try:
                    accepted.append(silent.accept()[0])
                except OSError:
                    pass
        done = False
        thread = threading.Thread(target=accept_all)
        thread.start()

        def run(reactor):
            pool = BlockingPool(reactor, 1, "push")
            pool.startService()
            url = f"https://localhost:{silent.getsockname()[1]}/notify"
            poster = HttpPoster(reactor, url, str(ca_file), 0.3, pool)
            both = defer.DeferredList([poster.post("held"), poster.post("queued")],
                                      consumeErrors=True)

            # stopService lets the thread run what is queued before it stops:
            # the held POST's socket times out too, then the queued one has had
            # its turn (no fixed wait for it)
            return both.addBoth(lambda results: (pool.stopService(), results)[1])
        try:
            results = on_reactor(run)
        finally:
            done = True
            thread.join()
            silent.setblocking(False)  # and a connection it made is counted
            while True:
                try:
                    accepted.append(silent.accept()[0])
                except BlockingIOError:
                    break
            for conn in accepted:
                conn.close()
    assert [ok for ok, _ in results] == [False, False]
    assert len(accepted) == 1
