"""DKIM (RFC 6376) with dkimpy: verify incoming mail, sign outgoing mail.

Incoming: a message needs one valid signature whose ``d=`` is exactly the
domain of its From address (strict alignment, as DMARC's ``adkim=s``), else
it is refused ("dkim-invalid": ``554 5.7.1``). Keys come from `dnstxt`
(asynchronous, on the reactor); the hashing runs in the thread pool. When no
signature verified and a key lookup failed temporarily, the refusal is
"dkim-dns-failure" (a 451): DNS trouble never bounces mail.

Outgoing: sign with ``d=<mail_domain>`` and each configured key (rsa-sha256,
ed25519-sha256, RFC 8463), relaxed/simple like the reference relay's
OpenDKIM, over the header fields OpenDKIM signs by default plus Autocrypt
and Content-Type, oversigning those that must not be added later. The
signature header fields are returned as bytes to prepend; the message
itself is never changed.

dkimpy parses a whole message into a list of lines; here it is given only the
header block and the body as the parsed `mail.Mail` delimits them, which
keeps a 25 MB message from costing hundreds of MB.
"""

import base64
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value
from twisted.internet import defer

from ..core.failures import Refused
from .dnstxt import DnsTemporaryError
from .mail import domain_of
from .policy import Accepted

ACCEPT_DKIM = Accepted("dkim-valid")
REFUSE_NO_DKIM = Refused("dkim-invalid")
DKIM_TEMPFAIL = Refused("dkim-dns-failure")

# OpenDKIM's default signed header fields (RFC 6376 section 5.4.1) and autocrypt
SIGN_HEADERS = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "content-id",
    "content-description", "resent-date", "resent-from", "resent-sender", "resent-to",
    "resent-cc", "resent-message-id", "in-reply-to", "references", "list-id",
    "list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner",
    "list-archive", "autocrypt")
# signed once more than present, so that adding one breaks the signature
OVERSIGN_HEADERS = (
    "from", "reply-to", "subject", "date", "to", "cc", "resent-date", "resent-from",
    "resent-sender", "resent-to", "resent-cc", "in-reply-to", "references", "list-id",
    "list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner",
    "list-archive", "autocrypt", "content-type")

def dkim_message(mail) -> dkim.DKIM:
    """A dkimpy DKIM object for `mail` (a `mail.Mail`): its header block, its body."""
    signer = dkim.DKIM()
    signer.headers, _ = dkim.rfc822_parse(mail.header_block + b"\r\n")
    body = mail.body
    if body.count(b"\n") != body.count(b"\r\n"):  # bare LFs: dkimpy's line ending rule
        body = re.sub(rb"\r?\n", b"\r\n", body)
    signer.body = body
    return signer


def signature_candidates(signer: dkim.DKIM, from_domain: str):
    """[(index, key name)] of the DKIM-Signature fields with d= the From domain."""
    fields = [v for k, v in signer.headers if k.lower() == b"dkim-signature"]
    candidates = []
    for index, value in enumerate(fields):
        try:
            tags = parse_tag_value(value)
        except InvalidTagValueList:
            continue
        domain, selector = tags.get(b"d", b""), tags.get(b"s", b"")
        if selector and domain.decode("ascii", "replace").lower() == from_domain:
            candidates.append((index, key_name(selector + b"._domainkey." + domain)))
    return candidates


def key_name(name: bytes) -> str:
    return name.decode("ascii", "replace").rstrip(".").lower()


def prepare(mail):
    """Thread-pool part 1: (signer, candidates), or the refusal when there are none."""
    if mail.from_address is None:
        return REFUSE_NO_DKIM
    try:
        signer = dkim_message(mail)
    except dkim.DKIMException:
        return REFUSE_NO_DKIM
    candidates = signature_candidates(signer, domain_of(mail.from_address))
    return (signer, candidates) if candidates else REFUSE_NO_DKIM


def verify_candidates(signer, candidates, keys):
    """Thread-pool part 2: the first candidate whose key is known and verifies wins."""

    def dnsfunc(name, timeout=5):
        return keys.get(key_name(name))

    for index, name in candidates:
        if keys.get(name) is None:
            continue
        try:
            if signer.verify(idx=index, dnsfunc=dnsfunc):
                return ACCEPT_DKIM
        except dkim.DKIMException:
            continue
    return REFUSE_NO_DKIM


class DkimVerifier:
    def __init__(self, lookup, pool):
        self.lookup = lookup
        self.pool = pool

    @defer.inlineCallbacks
    def check(self, mail):
        """Deferred: ACCEPT_DKIM, REFUSE_NO_DKIM or DKIM_TEMPFAIL."""
        prepared = yield self.pool.run(prepare, mail)
        if not isinstance(prepared, tuple):
            return prepared
        signer, candidates = prepared
        keys, temporary = {}, False
        for name in dict.fromkeys(name for _, name in candidates):
            try:
                keys[name] = yield self.lookup.lookup(name)
            except DnsTemporaryError:
                temporary = True
        verdict = yield self.pool.run(verify_candidates, signer, candidates, keys)
        return DKIM_TEMPFAIL if temporary and verdict is REFUSE_NO_DKIM else verdict


def headers_to_sign(headers) -> list:
    counts = Counter(name.decode("ascii", "replace").lower() for name, _ in headers)
    signed = [name for name in SIGN_HEADERS for _ in range(counts[name])]
    return [n.encode() for n in signed + list(OVERSIGN_HEADERS)]


def load_signing_key(path: str):
    """(algorithm, key in dkimpy's format) from a PEM file (RSA or Ed25519,
    converted in a child process: pemkey.py says why) or a dkimpy/`dknewkey`
    Ed25519 file (the base64 seed)."""
    data = Path(path).read_bytes()
    if b"-----BEGIN" not in data:
        seed = base64.b64decode(data.strip(), validate=True)
        if len(seed) != 32:
            raise ValueError(f"{path}: not a PEM key nor a base64 Ed25519 seed")
        return b"ed25519-sha256", base64.b64encode(seed)
    done = subprocess.run([sys.executable, "-m", "chatmail_services.filtermail.pemkey", path],
                          capture_output=True, timeout=60)
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines() or ["failed"]
        raise ValueError(f"{path}: {why[-1]}")
    algorithm, _, key = done.stdout.partition(b"\n")
    return algorithm, key


class DkimSigner:
    """sign(mail) -> the DKIM-Signature header fields to prepend (bytes)."""

    def __init__(self, domain: str, keys):
        self.domain = domain.encode()
        self.keys = [(selector.encode(), algorithm, key) for selector, algorithm, key in keys]

    @classmethod
    def from_config(cls, domain, sign):
        keys = [(sign.selector, *load_signing_key(sign.key_file))]
        if sign.ed25519_selector and sign.ed25519_key_file:
            algorithm, key = load_signing_key(sign.ed25519_key_file)
            if algorithm != b"ed25519-sha256":
                raise ValueError(f"{sign.ed25519_key_file}: not an Ed25519 key")
            keys.append((sign.ed25519_selector, algorithm, key))
        return cls(domain, keys)

    def sign(self, mail) -> bytes:
        signer = dkim_message(mail)
        include = headers_to_sign(signer.headers)
        return b"".join(
            signer.sign(selector, self.domain, key, signature_algorithm=algorithm,
                        canonicalize=(b"relaxed", b"simple"), include_headers=include)
            for selector, algorithm, key in self.keys)
