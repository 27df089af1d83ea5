"""A real Delta Chat client (deltachat-rpc-server from PyPI) joins through the web front.

The DCACCOUNT code itself is parsed by the client as an account code for
this front. The client cannot take the direct path (it fetching `/new`
itself): its HTTPS client trusts only its built-in roots, ignores
SSL_CERT_FILE, and refuses the local relay's test CA ("invalid peer
certificate: UnknownIssuer"). So two accounts join as the QR flow would
end: credentials fetched from `/new` over HTTPS, handed to the client as a
`dclogin:` code for the local relay's IMAP and submission ports. They then
verify each other (secure-join) and exchange an end-to-end encrypted message
through Postfix, both filtermail filters and Dovecot.
"""

import json
import os
import shutil
import ssl
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .test_web import GUARDS_OFF
from .conftest import LocalRelay

BIN = Path(sys.executable).parent


@pytest.fixture
def full_relay(relay_dir):
    relay = LocalRelay(relay_dir, web=True, postfix="before",
                       overrides={"doveauth": GUARDS_OFF})
    try:
        yield relay.start()
    finally:
        relay.stop()


@pytest.fixture
def deltachat(tmp_path, monkeypatch):
    from deltachat_rpc_client import DeltaChat, Rpc

    assert shutil.which("deltachat-rpc-server", path=str(BIN)), \
        "pip install deltachat-rpc-server (the test extra)"
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    with Rpc(accounts_dir=str(tmp_path / "deltachat")) as rpc:
        yield DeltaChat(rpc)


def dclogin(relay) -> str:
    context = ssl.create_default_context(cafile=str(relay.web.ca_file))
    request = urllib.request.Request(relay.web.url + "/new", data=b"", method="POST")
    with urllib.request.urlopen(request, context=context, timeout=30) as answer:
        creds = json.load(answer)
    query = urllib.parse.urlencode({
        "p": creds["password"], "v": "1", "ih": "127.0.0.1", "ip": relay.imap_port,
        "is": "plain", "sh": "127.0.0.1", "sp": relay.mail.ports["submission"],
        "ss": "starttls", "ic": "3"})  # ic=3: accept the self-signed STARTTLS certificate
    return creds["email"], f"dclogin:{creds['email']}?{query}"


def test_delta_chat_reads_the_dcaccount_code_as_an_account_code(full_relay, deltachat):
    account = deltachat.add_account()
    assert account.check_qr(full_relay.web.dcaccount) == {"kind": "account",
                                                          "domain": "127.0.0.1"}


def test_two_delta_chat_clients_join_with_new_credentials_and_talk(full_relay, deltachat):
    accounts = []
    for name in ("alice", "bob"):
        addr, code = dclogin(full_relay)
        account = deltachat.add_account()
        account.add_transport_from_qr(code)
        account.set_config("displayname", name)
        account.start_io()
        assert account.get_config("configured_addr") == addr
        accounts.append(account)
    alice, bob = accounts
    bob.secure_join(alice.get_qr_code())
    bob.wait_for_securejoin_joiner_success()
    bob.create_chat(alice).send_text("hello over the local relay")
    snapshot = alice.wait_for_incoming_msg().get_snapshot()
    assert (snapshot.text, snapshot.show_padlock) == ("hello over the local relay", True)
