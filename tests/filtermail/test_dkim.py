"""DKIM signing and strict-alignment verification with dkimpy, keys made per session."""

import subprocess

import dkim
import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.names import dns, error

from chatmail_services.core.config import DkimSign
from chatmail_services.filtermail.dkimcheck import (
    ACCEPT_DKIM, DKIM_TEMPFAIL, REFUSE_NO_DKIM, DkimSigner, DkimVerifier, dkim_message,
    headers_to_sign,
)
from chatmail_services.filtermail.dnstxt import (
    DnsTemporaryError, TxtLookup, parse_nameservers,
)
from chatmail_services.filtermail.mail import Envelope, Mail
from chatmail_services.filtermail.smtp import reply_for

from dkim_keys import make_dkim_key  # scripts/ (tests/conftest.py puts it on sys.path)

DOMAIN = "chat.example.org"


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim")
    rsa_path, rsa_txt = make_dkim_key(d, "rsa", "rsa")
    ed_path, ed_txt = make_dkim_key(d, "ed25519", "ed")
    return {"rsa": (rsa_path, rsa_txt), "ed25519": (ed_path, ed_txt)}


@pytest.fixture(scope="session")
def signer(keys):
    return DkimSigner.from_config(DOMAIN, DkimSign(
        "rsa1", str(keys["rsa"][0]), "ed1", str(keys["ed25519"][0])))


@pytest.fixture
def records(keys):
    return {f"rsa1._domainkey.{DOMAIN}": keys["rsa"][1],
            f"ed1._domainkey.{DOMAIN}": keys["ed25519"][1]}


class StaticTxt:
    """Stand-in for dnstxt.TxtLookup (the real one is exercised against a real
    DNS server in tests/integration): answers from a dict, or fails temporarily."""

    def __init__(self, records, failing=()):
        self.records, self.failing, self.asked = records, set(failing), []

    def lookup(self, name):
        self.asked.append(name)
        if name in self.failing:
            return defer.fail(DnsTemporaryError("SERVFAIL"))
        return defer.succeed(self.records.get(name))


def mail_of(message: bytes) -> Mail:
    return Mail(Envelope(f"alice@{DOMAIN}", rcpts=[("bob@example.net", ())]), message)


def sign(signer, message: bytes) -> bytes:
    """The message as it leaves: the signature header fields, then the message."""
    return signer.sign(mail_of(message)) + message


def check(verifier, message: bytes):
    results = []
    verifier.check(mail_of(message)).addBoth(results.append)
    return results[0]


@pytest.fixture
def message(make_eml, armored):
    return make_eml("encrypted", from_addr=f"alice@{DOMAIN}", to_addr="bob@example.net",
                    armored=armored.decode())


def test_signs_with_rsa_and_ed25519_and_both_verify(signer, records, message):
    signed = sign(signer, message)
    assert signed.count(b"DKIM-Signature:") == 2
    for idx in (0, 1):
        assert dkim.DKIM(signed).verify(idx=idx, dnsfunc=lambda n, timeout=5: records[
            n.decode().rstrip(".")])


def test_signed_headers_include_autocrypt_and_content_type_oversigned(signer, message):
    header = signer.sign(mail_of(message)).split(b"DKIM-Signature:")[1]
    tags = dkim.util.parse_tag_value(header)
    signed = [h.strip() for h in tags[b"h"].split(b":")]
    assert signed.count(b"autocrypt") == 2 and signed.count(b"content-type") == 2
    assert signed.count(b"from") == 2 and b"message-id" in signed
    assert tags[b"c"] == b"relaxed/simple" and tags[b"d"] == DOMAIN.encode()


def test_headers_to_sign_counts_repeated_fields():
    message = b"From: a\r\nReceived: x\r\nTo: b\r\nTo: c\r\n\r\nbody\r\n"
    headers = dkim_message(mail_of(message)).headers
    include = headers_to_sign(headers)
    assert include.count(b"to") == 3 and b"received" not in include


def test_valid_aligned_signature_is_accepted(signer, records, inline_pool, message):
    verifier = DkimVerifier(StaticTxt(records), inline_pool)
    assert check(verifier, sign(signer, message)) == ACCEPT_DKIM


def test_verification_of_a_large_body_does_not_split_it_into_lines(signer, records,
                                                                    inline_pool, message):
    big = message + b"x" * 76 * 1000 + b"\r\n"
    assert check(DkimVerifier(StaticTxt(records), inline_pool), sign(signer, big)) == ACCEPT_DKIM


@pytest.mark.parametrize("tamper", [
    lambda m: m.replace(b"Version: 1", b"Version: 2"),  # body
    lambda m: m.replace(b"Subject: [...]", b"Subject: changed"),  # signed header
    lambda m: m.replace(b"Subject: [...]", b"Subject: [...]\r\nAutocrypt: addr=x"),  # oversigned
])
def test_tampered_message_is_refused_554(signer, records, inline_pool, message, tamper):
    verifier = DkimVerifier(StaticTxt(records), inline_pool)
    verdict = check(verifier, tamper(sign(signer, message)))
    assert verdict == REFUSE_NO_DKIM
    assert str(reply_for(verdict)) == "554 5.7.1 No valid DKIM signature found"


def test_signature_of_another_domain_is_not_aligned(keys, records, inline_pool, make_eml,
                                                     armored):
    other = DkimSigner.from_config("example.net", DkimSign("rsa1", str(keys["rsa"][0])))
    message = make_eml("encrypted", from_addr=f"alice@{DOMAIN}", to_addr="b@x.org",
                       armored=armored.decode())
    txt = StaticTxt({**records, "rsa1._domainkey.example.net": keys["rsa"][1]})
    assert check(DkimVerifier(txt, inline_pool), sign(other, message)) == (
        REFUSE_NO_DKIM)
    assert txt.asked == []  # not even looked up


def test_unsigned_or_unknown_key_is_refused(signer, inline_pool, message):
    verifier = DkimVerifier(StaticTxt({}), inline_pool)
    assert check(verifier, message) == REFUSE_NO_DKIM
    assert check(verifier, sign(signer, message)) == REFUSE_NO_DKIM


def test_dns_trouble_is_451_unless_another_signature_verifies(signer, records, inline_pool,
                                                              message):
    signed = sign(signer, message)
    both_fail = StaticTxt(records, failing=records)
    assert check(DkimVerifier(both_fail, inline_pool), signed) == DKIM_TEMPFAIL
    assert reply_for(DKIM_TEMPFAIL).code == 451
    one_fails = StaticTxt(records, failing=[f"rsa1._domainkey.{DOMAIN}"])
    assert check(DkimVerifier(one_fails, inline_pool), signed) == ACCEPT_DKIM


def test_malformed_headers_are_refused_not_raised(inline_pool):
    verifier = DkimVerifier(StaticTxt({}), inline_pool)
    assert check(verifier, b"From: <a@chat.example.org>\r\nno colon here\r\n\r\nx\r\n") == (
        REFUSE_NO_DKIM)
    assert check(verifier, b"\xff\xfe garbage") == REFUSE_NO_DKIM


# --- TxtLookup: twisted.names outcomes, cache ---------------------------------


class ScriptedResolver:
    """Stand-in for twisted.names.client.Resolver: replays answers or raises
    the real twisted.names exceptions, counting queries."""

    def __init__(self, outcome):
        self.outcome, self.queries = outcome, 0

    def lookupText(self, name, timeout=None):
        self.queries += 1
        if isinstance(self.outcome, Exception):
            return defer.fail(self.outcome)
        rr = dns.RRHeader(name, dns.TXT, ttl=300, payload=dns.Record_TXT(*self.outcome))
        return defer.succeed(([rr], [], []))


def lookup(txt, name="s._domainkey.example.net"):
    results = []
    txt.lookup(name).addBoth(results.append)
    return results[0]


def test_txt_strings_are_joined_and_cached_for_their_ttl():
    clock, resolver = Clock(), ScriptedResolver([b"v=DKIM1; p=", b"abc"])
    txt = TxtLookup(clock, resolver)
    assert lookup(txt) == b"v=DKIM1; p=abc"
    assert lookup(txt, "S._domainkey.example.net.") == b"v=DKIM1; p=abc"
    assert resolver.queries == 1
    clock.advance(301)
    lookup(txt)
    assert resolver.queries == 2


@pytest.mark.parametrize("exc,permanent", [
    (error.DNSNameError("nxdomain"), True),
    (error.DNSServerError("servfail"), False),
    (error.DNSQueryRefusedError("refused"), False),
    (defer.TimeoutError("timeout"), False),
    (error.DNSQueryTimeoutError("timeout"), False),
])
def test_dns_failures_are_permanent_only_for_nxdomain(exc, permanent):
    result = lookup(TxtLookup(Clock(), ScriptedResolver(exc)))
    if permanent:
        assert result is None
    else:
        assert result.check(DnsTemporaryError)


def test_cache_is_bounded():
    txt = TxtLookup(Clock(), ScriptedResolver([b"x"]), max_entries=3)
    for i in range(10):
        lookup(txt, f"s{i}._domainkey.example.net")
    assert len(txt.cache) == 3


def test_parse_nameservers():
    assert parse_nameservers(["127.0.0.1:5353", "10.0.0.1", "[::1]:53", "::1"]) == [
        ("127.0.0.1", 5353), ("10.0.0.1", 53), ("::1", 53), ("::1", 53)]


def test_a_pem_key_is_converted_in_a_child_process_and_errors_name_the_file(keys, tmp_path):
    from chatmail_services.filtermail.dkimcheck import load_signing_key

    algorithm, pem = load_signing_key(str(keys["rsa"][0]))  # the session's, read only
    assert algorithm == b"rsa-sha256" and pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match=f"^{garbage}: "):
        load_signing_key(str(garbage))
    ec = tmp_path / "ec.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(ec)], check=True, capture_output=True)
    with pytest.raises(ValueError, match="only RSA and Ed25519 keys can sign DKIM"):
        load_signing_key(str(ec))
