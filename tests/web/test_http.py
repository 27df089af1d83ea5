"""The web front's answers: pages, /new, and every kind of bad request (in memory)."""

import json

import pytest

from chatmail_services.core.store.registration import new_token, token_hash

NOW = 1_700_000_000


def invite(web, uses=1, days=1):
    token = new_token()
    web.registration.add_invite(token_hash(token), uses, NOW - 10, NOW + days * 86400)
    return token


def set_mode(web, mode):
    web.registration.set_mode(mode)
    web.mode = mode


def test_new_returns_credentials_of_a_created_account(web):
    status, head, body = web.request("POST", "/new")
    creds = json.loads(body)
    assert status == 200 and "application/json" in head and "no-store" in head
    local, _, domain = creds["email"].partition("@")
    assert domain == "chat.example.org" and len(local) == 9
    assert set(local) <= set("abcdefghijklmnopqrstuvwxyz0123456789")
    assert len(creds["password"]) >= 32
    assert web.store.get_password(creds["email"]) == "{PLAIN}" + creds["password"]
    assert web.store.enforces_e2ee_incoming(creds["email"])


def test_get_new_works_too_as_in_the_reference(web):
    assert web.request("GET", "/new")[0] == 200


def test_the_localpart_follows_username_max_length(make_config, inline_pool):
    from .conftest import TEMPLATES, Web

    config = make_config(web={"templates_dir": str(TEMPLATES)},
                         doveauth={"username_min_length": 6, "username_max_length": 12})
    email = json.loads(Web(config, inline_pool).request("POST", "/new")[2])["email"]
    assert len(email.partition("@")[0]) == 12


def test_a_flood_from_one_address_gets_429_with_retry_after(make_web):
    web = make_web(new_per_minute=1, new_burst=3)
    codes = [web.request("POST", "/new")[0] for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    status, head, body = web.request("POST", "/new")
    assert status == 429 and "Retry-After: 60" in head and b"too many" in body
    assert web.request("POST", "/new", client="192.0.2.2")[0] == 200  # others go on
    web.now += 60
    assert web.request("POST", "/new")[0] == 200


def test_ipv6_clients_are_throttled_by_their_slash_64(make_web):
    from chatmail_services.web.policy import client_key

    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"


def test_behind_a_proxy_the_forwarded_address_is_throttled(make_web):
    web = make_web(new_per_minute=1, new_burst=1, behind_proxy=True)
    fwd = lambda ip: (f"X-Forwarded-For: {ip}",)  # noqa: E731
    assert web.request("POST", "/new", headers=fwd("198.51.100.1"))[0] == 200
    assert web.request("POST", "/new", headers=fwd("198.51.100.1"))[0] == 429
    assert web.request("POST", "/new", headers=fwd("198.51.100.2"))[0] == 200


def test_closed_refuses_with_403_and_creates_nothing(web):
    set_mode(web, "closed")
    status, _, body = web.request("POST", "/new")
    assert status == 403 and b"does not accept new accounts" in body
    assert list(web.store.iter_accounts()) == []


def test_the_legacy_switch_file_closes_new_too(web):
    open(web.config.doveauth.nocreate_file, "w").close()
    assert web.request("POST", "/new")[0] == 403


def test_invite_mode_needs_a_token(web):
    set_mode(web, "invite")
    status, _, body = web.request("POST", "/new")
    assert status == 403 and b"invite-only" in body


def test_a_one_use_invite_creates_one_account(web):
    set_mode(web, "invite")
    token = invite(web)
    assert web.request("POST", f"/new?token={token}")[0] == 200
    status, _, body = web.request("POST", f"/new?token={token}")
    assert status == 403 and b"used up" in body
    assert len(list(web.store.iter_accounts())) == 1


@pytest.mark.parametrize("send", ["form", "json"])
def test_the_token_may_come_in_a_form_or_json_body(web, send):
    set_mode(web, "invite")
    token = invite(web)
    if send == "form":
        body, ctype = f"token={token}".encode(), "application/x-www-form-urlencoded"
    else:
        body, ctype = json.dumps({"token": token}).encode(), "application/json"
    assert web.request("POST", "/new", body, (f"Content-Type: {ctype}",))[0] == 200


def test_unknown_and_expired_tokens_are_refused(web):
    set_mode(web, "invite")
    status, _, body = web.request("POST", f"/new?token={new_token()}")
    assert status == 403 and b"not valid" in body
    token = new_token()
    web.registration.add_invite(token_hash(token), 5, NOW - 7200, NOW - 3600)
    status, _, body = web.request("POST", f"/new?token={token}")
    assert status == 403 and b"expired" in body
    assert list(web.store.iter_accounts()) == []


def test_in_open_mode_a_token_is_not_spent(web):
    token = invite(web)
    assert web.request("POST", f"/new?token={token}")[0] == 200
    assert web.registration.list_invites(NOW)[0].uses_left == 1


def test_an_invite_is_not_redeemed_by_get(web):
    set_mode(web, "invite")
    token = invite(web)
    status, _, body = web.request("GET", f"/new?token={token}")
    assert status == 405 and b"POST" in body
    assert web.registration.list_invites(NOW)[0].uses_left == 1


@pytest.mark.parametrize("path,body,ctype,code,text", [
    ("/new?token=a&token=b", b"", None, 400, b"one token"),
    ("/new?token=%00bad", b"", None, 400, b"malformed"),
    ("/new?token=" + "a" * 129, b"", None, 400, b"malformed"),
    ("/new", b"{not json", "application/json", 400, b"not valid JSON"),
    ("/new", b"[1, 2]", "application/json", 400, b"must be an object"),
    ("/new", b'{"token": 5}', "application/json", 400, b"malformed"),
    ("/new", b"\xff\xfe", "application/json", 400, b"not valid JSON"),
    ("/new", b"<xml/>", "text/xml", 415, b"JSON object"),
])
def test_bad_input_gets_a_clear_4xx(web, path, body, ctype, code, text):
    headers = (f"Content-Type: {ctype}",) if ctype else ()
    status, _, payload = web.request("POST", path, body, headers)
    assert (status, text in payload) == (code, True)


def test_a_huge_body_is_refused_with_413_before_it_is_read(web):
    head = (b"POST /new HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
    answer, closed = web.raw(head + b"x" * 10000)
    assert answer.startswith(b"HTTP/1.1 413 ") and closed


def test_a_huge_chunked_body_is_refused_with_413(web):
    chunk = b"1000\r\n" + b"x" * 0x1000 + b"\r\n"
    head = b"POST /new HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer, closed = web.raw(head + chunk * 4, chunks=100)
    assert answer.startswith(b"HTTP/1.1 413 ") and closed


def test_wrong_methods_get_405_with_allow(web):
    status, head, _ = web.request("DELETE", "/new")
    assert status == 405 and "Allow: POST, GET" in head
    status, head, _ = web.request("POST", "/")
    assert status == 405 and "Allow: GET, HEAD" in head


def test_unknown_paths_get_404(web):
    assert web.request("GET", "/../../etc/passwd")[0] == 404
    assert web.request("GET", "/new/")[0] == 404


def test_a_request_byte_by_byte_is_answered(web):
    answer, _ = web.raw(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: x\r\n\r\n", chunks=1)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"max_age: 2419200\r\n")


def test_garbage_gets_400_not_a_crash(web):
    answer, closed = web.raw(b"\x16\x03\x01\x00garbage\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and closed


def test_a_slow_client_is_disconnected_after_the_idle_timeout(make_config, inline_pool):
    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from chatmail_services.web.http import TIMEOUT

    from .conftest import TEMPLATES, Web

    clock = Clock()
    web = Web(make_config(web={"templates_dir": str(TEMPLATES)}), inline_pool, reactor=clock)
    proto = web.site.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 40000))
    proto.makeConnection(transport)
    proto.dataReceived(b"POST /new HTTP/1.1\r\nHost: x\r\n")  # and then nothing
    clock.advance(TIMEOUT - 1)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting


@pytest.mark.parametrize("request_head", [
    b"GET /" + b"x" * 20000 + b" HTTP/1.1\r\n",
    b"GET / HTTP/1.1\r\nX-Long: " + b"y" * 20000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-Long: " + b"y" * 20000,  # not even ended yet
])
def test_an_overlong_request_line_or_header_is_answered_431_not_dropped(web, request_head):
    answer, closed = web.raw(request_head)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n") and closed
    assert answer.endswith(b"\r\n\r\nrequest line or header field too long\n")
