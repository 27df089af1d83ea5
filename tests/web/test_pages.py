"""The web front's documents: the operator's templates, autoconfig, MTA-STS, store outages."""

import xml.etree.ElementTree as ET

import pytest

from chatmail_services.core.store import StoreUnavailable
from chatmail_services.web.pages import Pages, TemplateError

from .conftest import TEMPLATES


def test_the_open_index_has_the_qr_code_and_the_link(web):
    status, head, body = web.request("GET", "/")
    assert status == 200 and "text/html" in head and "Content-Security-Policy" in head
    assert b"<svg" in body and b'href="DCACCOUNT:https://chat.example.org/new"' in body


@pytest.mark.parametrize("mode,text", [("invite", b"invite-only"),
                                       ("closed", b"does not accept new accounts")])
def test_without_open_registration_the_index_shows_no_qr_code(web, mode, text):
    web.mode = mode
    body = web.request("GET", "/")[2]
    assert b"<svg" not in body and text in body


def test_head_answers_headers_only(web):
    status, head, body = web.request("HEAD", "/info.html")
    assert status == 200 and body == b""


def test_info_and_privacy_name_the_domain_and_the_retention_rules(make_web):
    web = make_web()
    info = web.request("GET", "/info.html")[2]
    assert b"chat.example.org" in info and b"after 20 days" in info
    assert b"90 days" in info and b"500 MB" in info
    assert b"chat.example.org" in web.request("GET", "/privacy.html")[2]


def test_autoconfig_is_thunderbird_xml_on_both_paths(web):
    for path in ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"):
        status, head, body = web.request("GET", path)
        root = ET.fromstring(body)
        assert status == 200 and "application/xml" in head
        assert root.find("emailProvider/domain").text == "chat.example.org"
        servers = {(s.get("type"), s.findtext("port"), s.findtext("socketType"))
                   for s in root.iter() if s.tag.endswith("Server")}
        assert ("imap", "993", "SSL") in servers and ("smtp", "465", "SSL") in servers


def test_mta_sts_policy_names_the_mx(web):
    body = web.request("GET", "/.well-known/mta-sts.txt")[2]
    assert body.split(b"\r\n")[:3] == [b"version: STSv1", b"mode: enforce",
                                       b"mx: chat.example.org"]


def test_operator_templates_are_used_and_a_bad_one_is_named(make_config, tmp_path):
    for name in ("index.html", "info.html", "privacy.html"):
        (tmp_path / name).write_text((TEMPLATES / name).read_text())
    (tmp_path / "info.html").write_text("Welcome to $mail_domain, costs $$0\n")
    pages = Pages(make_config(web={"templates_dir": str(tmp_path)}))
    assert pages.info == b"Welcome to chat.example.org, costs $0\n"
    (tmp_path / "info.html").write_text("$nonsense")
    with pytest.raises(TemplateError, match="info.html: unknown or bad variable 'nonsense'"):
        Pages(make_config(web={"templates_dir": str(tmp_path)}))
    (tmp_path / "info.html").write_text("ok")
    (tmp_path / "privacy.html").unlink()
    with pytest.raises(TemplateError, match="cannot read .*privacy.html"):
        Pages(make_config(web={"templates_dir": str(tmp_path)}))


def test_a_store_outage_is_a_503_with_retry_after(web):
    def down(*args):
        raise StoreUnavailable("redis unreachable")

    web.registration.get_mode = down
    status, head, body = web.request("POST", "/new")
    assert status == 503 and "Retry-After" in head and b"try again later" in body


def test_a_busy_machine_is_a_503(web):
    web.admission.probe.load_1m = lambda: 1000.0
    status, _, body = web.request("POST", "/new")
    assert status == 503 and b"busy" in body
