"""Property-based fuzzing of the web front's request parsing (hypothesis).

Any bytes a client sends get a well-formed HTTP answer with a 2xx/4xx/503
code and a text, never a 500 (a bug) nor a dropped connection; a request that
is not complete yet gets no answer and keeps the connection open; and the
site still serves a good request afterwards, with no timer left behind once
the connections are gone.
"""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from chatmail_services.web.http import new_request_token
from chatmail_services.web.pages import Pages

from .conftest import TEMPLATES, Web

METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"get", b"G\xffT", b""]
PATHS = [b"/", b"/new", b"/new?token=abc", b"/new?token=", b"/new?token=a&token=b",
         b"/new?token=%ff%00", b"/info.html", b"/../etc/passwd", b"/mail/config-v1.1.xml",
         b"/.well-known/mta-sts.txt", b"//", b"*", b"/%", b"/\xff", b"http://x/new", b""]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/x", b""]
HEADERS = [b"Host: chat.example.org", b"Content-Type: application/json",
           b"Content-Type: application/x-www-form-urlencoded", b"Content-Type: text/plain",
           b"Content-Length: 5", b"Content-Length: 99999999", b"Content-Length: -1",
           b"Content-Length: x", b"Transfer-Encoding: chunked", b"Connection: close",
           b"X-Forwarded-For: 203.0.113.9, \xff", b"Expect: 100-continue", b"Bad Header",
           b": empty", b" folded", b"X: " + b"y" * 20000]
BODIES = [b"", b"{}", b'{"token": "abc"}', b'{"token": 5}', b"[1]", b"{", b"token=abc",
          b"0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"\xff\x00", b"x" * 5000]
REQUEST = st.builds(
    lambda m, p, v, h, b: m + b" " + p + b" " + v + b"\r\n" + b"".join(x + b"\r\n" for x in h)
    + b"\r\n" + b,
    st.sampled_from(METHODS), st.sampled_from(PATHS), st.sampled_from(VERSIONS),
    st.lists(st.sampled_from(HEADERS), max_size=5), st.sampled_from(BODIES))
STATUS = re.compile(rb"HTTP/1\.[01] (\d\d\d) [^\r\n]*\r\n")
FIXTURES = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def config(make_config):
    return make_config(web={"templates_dir": str(TEMPLATES)}, doveauth={"max_load_1m": 100})


@pytest.fixture
def pages(config):
    """The rendered documents (and the index's QR code, the costly part): they
    never change once built, so one set serves every example of a test."""
    return Pages(config)


def site(config, pages, inline_pool):
    clock = Clock()
    web = Web(config, inline_pool, reactor=clock, pages=pages)
    web.clock = clock
    return web


def send(web, data, cuts):
    proto = web.site.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 40000))
    proto.makeConnection(transport)
    start = 0
    for point in sorted({min(c, len(data)) for c in cuts}) + [len(data)]:
        if not transport.disconnecting:
            proto.dataReceived(data[start:point])
        start = point
    return proto, transport


@settings(max_examples=250, **FIXTURES)
@given(st.one_of(REQUEST, st.binary(max_size=200)), st.lists(st.integers(0, 400), max_size=4))
def test_any_request_gets_a_well_formed_answer_and_the_site_keeps_serving(
        config, pages, inline_pool, data, cuts):
    web = site(config, pages, inline_pool)
    proto, transport = send(web, data, cuts)
    answer = transport.value().removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")  # interim
    if answer:
        status = STATUS.match(answer)
        assert status, answer[:200]
        assert int(status.group(1)) in {200, 400, 403, 404, 405, 408, 411, 413, 415, 429, 431,
                                        501, 503, 505}
    else:  # not a whole request yet: the client may still send the rest
        assert not transport.disconnecting
    good, good_transport = send(web, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", [])
    assert good_transport.value().startswith(b"HTTP/1.1 200 ")
    for p in (proto, good):
        p.connectionLost(None)
    assert web.clock.getDelayedCalls() == []


class Request:
    """What `new_request_token` reads of a twisted.web request."""

    def __init__(self, method, args, content_type, body):
        import io

        self.method, self.args = method, args
        self.headers = {b"content-type": content_type}
        self.content = io.BytesIO(body)

    def getHeader(self, name):
        return self.headers.get(name)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"GET", b"POST"]),
       st.lists(st.binary(max_size=40), max_size=3),
       st.sampled_from([None, b"application/json", b"application/x-www-form-urlencoded",
                        b"text/plain", b"APPLICATION/JSON; charset=utf-8"]),
       st.one_of(st.sampled_from(BODIES), st.binary(max_size=60),
                 st.dictionaries(st.sampled_from(["token", "x"]),
                                 st.one_of(st.text(max_size=20), st.integers(), st.none()),
                                 max_size=2).map(lambda d: __import__("json").dumps(d).encode())))
def test_a_new_request_yields_a_valid_token_none_or_a_4xx(method, tokens, content_type, body):
    from chatmail_services.web.http import BadRequest

    args = {b"token": tokens} if tokens else {}
    try:
        token = new_request_token(Request(method, args, content_type, body))
    except BadRequest as e:
        assert 400 <= e.code < 500 and str(e)
        return
    assert token is None or re.fullmatch(r"[A-Za-z0-9_-]{1,128}", token)
    assert token is None or method == b"POST"
