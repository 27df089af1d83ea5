"""/metrics of doveauth and lastlogin, scraped over HTTP after real Dovecot traffic."""

import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .conftest import login_ok

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from local_relay import free_port  # noqa: E402

PASSWORD = "a-long-secret"


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_real_logins_without_naming_anyone(make_relay, new_addr):
    auth_port, ll_port = free_port(), free_port()
    relay = make_relay(doveauth={"metrics": f"tcp:{auth_port}:interface=127.0.0.1"},
                       lastlogin={"metrics": f"tcp:{ll_port}:interface=127.0.0.1"})
    addr = new_addr()
    assert login_ok(relay, addr, PASSWORD)
    assert login_ok(relay, addr, PASSWORD)
    assert not login_ok(relay, new_addr(), "short")

    auth = scrape(auth_port)
    assert auth[("chatmail_doveauth_accounts_created_total", ())] == 1
    assert auth[("chatmail_doveauth_refusals_total", (("reason", "password_length"),))] == 1
    assert auth[("chatmail_doveauth_lookups_total", (("db", "passdb"), ("result", "found")))] == 2
    assert auth[("chatmail_doveauth_lookup_seconds_count", (("db", "passdb"),))] == 3
    assert auth[("chatmail_doveauth_last_success_timestamp_seconds", ())] > 1.7e9

    ll = scrape(ll_port)
    assert ll[("chatmail_lastlogin_updates_total", (("result", "recorded"),))] == 2
    assert ll[("chatmail_lastlogin_request_seconds_count", (("op", "commit"),))] == 2
    assert ll[("chatmail_lastlogin_last_success_timestamp_seconds", ())] > 1.7e9

    everything = repr(auth) + repr(ll)
    assert addr.split("@")[0] not in everything and "127.0.0.1" not in everything
    for log in relay.base.glob("*.log"):  # no access log: it would hold client IPs
        assert "/metrics" not in log.read_text()
