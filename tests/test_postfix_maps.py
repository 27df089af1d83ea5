"""conf/postfix/ lookup tables, queried with Debian's real postmap(1).

What the header_checks tables drop, what they must leave alone (the fields
chat clients and DKIM rely on), and which destinations tls_policy relaxes.
"""

import re
import subprocess
from pathlib import Path

import pytest

from chatmail_services.filtermail.dkimcheck import OVERSIGN_HEADERS, SIGN_HEADERS

POSTFIX = Path(__file__).resolve().parents[1] / "conf" / "postfix"
KEPT = ["From", "To", "Cc", "Date", "Message-ID", "Subject", "Autocrypt", "Chat-Version",
        "MIME-Version", "Content-Type", "In-Reply-To", "References", "Secure-Join"]


def lookup(table: str, key: str) -> str:
    out = subprocess.run(["postmap", "-q", key, f"regexp:{POSTFIX / table}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode in (0, 1), out.stderr  # 1: not found
    return out.stdout.strip()


def dropped_names(table: str) -> list[str]:
    return re.findall(r"(?m)^/\^([A-Za-z-]+)\[", (POSTFIX / table).read_text())


@pytest.mark.parametrize("name", ["Received", "X-Originating-IP", "X-Forwarded-For",
                                  "User-Agent", "X-Mailer"])
def test_submission_cleanup_drops_fields_naming_the_client(name):
    assert lookup("submission_header_cleanup", f"{name}: x") == "IGNORE"
    assert lookup("submission_header_cleanup", f"{name.lower()} : x") == "IGNORE"
    assert name in dropped_names("submission_header_cleanup")


@pytest.mark.parametrize("table", ["submission_header_cleanup", "delivery_header_cleanup"])
def test_header_cleanups_leave_the_fields_clients_use(table):
    for name in KEPT:
        assert lookup(table, f"{name}: x") == "", name


def test_fields_dropped_after_signing_are_not_signed_by_filtermail():
    # filtermail signs before Postfix's cleanup drops these: none may be covered
    signed = set(SIGN_HEADERS) | set(OVERSIGN_HEADERS)
    dropped = {n.lower() for n in dropped_names("submission_header_cleanup")}
    assert len(dropped) >= 5 and dropped & signed == set()


@pytest.mark.parametrize("name", ["Received", "DKIM-Signature", "Authentication-Results",
                                  "ARC-Seal"])
def test_delivery_cleanup_drops_trace_and_signature_fields(name):
    assert lookup("delivery_header_cleanup", f"{name}: x") == "IGNORE"


@pytest.mark.parametrize("nexthop, policy", [
    ("[192.0.2.1]", "encrypt"), ("[192.0.2.1]:25", "encrypt"),
    ("[IPv6:2001:db8::1]", "encrypt"),
    # names are verified: by default, or by the MTA-STS resolver's answer
    ("example.org", ""), ("[mx.example.org]", ""), ("[mx.example.org]:2525", ""),
    ("1.2.3.4.example.org", ""),
])
def test_tls_policy_relaxes_only_address_literals(nexthop, policy):
    assert lookup("tls_policy", nexthop) == policy
