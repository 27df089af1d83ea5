"""Addresses of this relay: one check at every edge, from a table."""

import pytest

from chatmail_services.core.addresses import BadAddress, address_refusal, check_address

DOMAIN = "chat.example.org"


@pytest.mark.parametrize("addr,reason", [
    ("abcdefghi@" + DOMAIN, None),
    ("a.b-c_d@" + DOMAIN, None),
    ("abcdefghi@other.org", "foreign_domain"),
    ("abcdefghi@CHAT.example.org", "foreign_domain"),
    ("no-at-sign", "bad_address"),
    ("@" + DOMAIN, "bad_address"),
    ("../etc@" + DOMAIN, "bad_address"),
    ("a/b@" + DOMAIN, "bad_address"),
    ("a\\b@" + DOMAIN, "bad_address"),
    (".hidden@" + DOMAIN, "bad_address"),
    ("a..b@" + DOMAIN, "bad_address"),
    ("nul\x00l@" + DOMAIN, "bad_address"),
    ("new\nline@" + DOMAIN, "bad_address"),
    ("two@at@" + DOMAIN, "bad_address"),
    ("a" * (255 - len("@" + DOMAIN)) + "@" + DOMAIN, None),  # a file name's 255 bytes
    ("a" * (256 - len("@" + DOMAIN)) + "@" + DOMAIN, "bad_address"),
    ("\u00e9" * 120 + "@" + DOMAIN, "bad_address"),  # 240 characters, 256 bytes
    ("a" * 300 + "@" + DOMAIN, "bad_address"),
    ("not-utf8-\udcff@" + DOMAIN, "bad_address"),  # a byte that was not UTF-8 on the wire
    ("lone-\ud800@" + DOMAIN, "bad_address"),
])
def test_address_refusal_says_why_without_echoing_the_address(addr, reason):
    refused = address_refusal(addr, DOMAIN)
    if reason is None:
        assert refused is None and check_address(addr, DOMAIN) == addr
        return
    assert refused.reason == reason and refused.text
    localpart = addr.partition("@")[0]
    assert not localpart or localpart not in refused.text
    with pytest.raises(BadAddress):  # what a store raises for the same address
        check_address(addr, DOMAIN)
