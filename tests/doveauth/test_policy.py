"""The account policy: admission rules, creation, existing accounts.

Driven the way the dict front-end drives it: `find` (no hashing) first, and
`create` only when `find` found no answer."""

import json
import os

import pytest
from passlib.hash import sha512_crypt

from chatmail_services.core.store.files import open_files
from chatmail_services.doveauth.policy import AccountPolicy, Refusal, hash_password

NOW = 1_700_000_000


class FixedProbe:
    """Machine-state stand-in (real readings are tested in test_resource_probe_reads)."""

    def __init__(self, load=0.1, memory=8 << 30, disk=100 << 30):
        self.load, self.memory, self.disk = load, memory, disk

    def load_1m(self):
        return self.load

    def available_memory(self):
        return self.memory

    def free_disk(self):
        return self.disk


@pytest.fixture
def make_policy(make_config):
    def make(probe=None, **overrides):
        config = make_config(**overrides)
        accounts = open_files(config.mailboxes_dir, config.mail_domain).accounts
        return AccountPolicy(config, accounts, probe or FixedProbe(), clock=lambda: NOW)

    return make


def created(policy, addr, password="secret-password"):
    """A first login: the address is unknown, so `create` decides."""
    assert policy.find(addr) is None
    result = policy.create(addr, password)
    assert result.created and result.refusal is None
    return result


def test_first_login_creates_account_with_verifiable_hash(make_policy, new_addr):
    policy, addr = make_policy(), new_addr()
    result = created(policy, addr)
    stored = result.fields["password"]
    assert stored.startswith("{SHA512-CRYPT}$6$")
    assert "rounds=" not in stored  # glibc default rounds, as existing relays
    assert sha512_crypt.verify("secret-password", stored[len("{SHA512-CRYPT}"):])
    assert result.fields["home"] == os.path.join(policy.config.mailboxes_dir, addr)
    assert (result.fields["uid"], result.fields["gid"]) == ("vmail", "vmail")


def test_wrong_password_does_not_replace_existing_hash(make_policy, new_addr):
    policy, addr = make_policy(), new_addr()
    first = created(policy, addr).fields["password"]
    again = policy.find(addr)  # found: `create` is never asked, the password unused
    assert not again.created
    assert again.fields["password"] == first  # Dovecot verifies, and fails
    assert policy.create(addr, "another-password").fields["password"] == first


@pytest.mark.parametrize("addr,password,overrides,refusal", [
    ("short@chat.example.org", "secret-password", {}, Refusal.LOCALPART_LENGTH),
    ("waytoolong1@chat.example.org", "secret-password", {}, Refusal.LOCALPART_LENGTH),
    ("UPPERcase@chat.example.org", "secret-password", {}, Refusal.LOCALPART_CHARS),
    ("with+plus@chat.example.org", "secret-password", {}, Refusal.LOCALPART_CHARS),
    ("abcdefghi@chat.example.org", "short", {}, Refusal.PASSWORD_LENGTH),
    ("abcdefghi@other.example", "secret-password", {}, Refusal.FOREIGN_DOMAIN),
    ("abc/../hi@chat.example.org", "secret-password", {}, Refusal.BAD_ADDRESS),
    ("no-at-sign", "secret-password", {}, Refusal.BAD_ADDRESS),
    ("abcdefghijkl@chat.example.org", "pw", {"doveauth": {"username_max_length": 12,
                                                          "password_min_length": 3}},
     Refusal.PASSWORD_LENGTH),
])
def test_admission_rules_refuse(make_policy, addr, password, overrides, refusal):
    policy = make_policy(**overrides)
    result = policy.find(addr) or policy.create(addr, password)  # as AuthDict does
    assert result.refusal is refusal and result.fields is None
    assert list(policy.users()) == []


@pytest.mark.parametrize("probe,refusal", [
    (FixedProbe(load=5.5), Refusal.HIGH_LOAD),
    (FixedProbe(memory=100 << 20), Refusal.LOW_MEMORY),
    (FixedProbe(disk=500 << 20), Refusal.LOW_DISK),
])
def test_resource_shortage_refuses_new_but_not_existing_accounts(
        make_policy, make_config, new_addr, probe, refusal):
    existing = new_addr()
    created(make_policy(), existing)
    policy = make_policy(probe=probe)
    newcomer = new_addr()
    assert policy.find(newcomer) is None
    assert policy.create(newcomer, "secret-password").refusal is refusal
    assert policy.find(existing).fields is not None


def test_nocreate_file_closes_registration_but_existing_accounts_log_in(
        make_policy, new_addr, tmp_path):
    policy, existing = make_policy(), new_addr()
    created(policy, existing)
    (tmp_path / "nocreate").touch()
    assert policy.create(new_addr(), "secret-password").refusal is Refusal.REGISTRATION_CLOSED
    assert policy.find(existing).fields is not None


def test_empty_password_file_is_never_claimable(make_policy, new_addr, tmp_path):
    policy, addr = make_policy(), new_addr()
    (tmp_path / "mail" / addr).mkdir(parents=True)
    (tmp_path / "mail" / addr / "password").write_bytes(b"")
    assert policy.find(addr).refusal is Refusal.ACCOUNT_DAMAGED
    assert (tmp_path / "mail" / addr / "password").read_bytes() == b""
    assert policy.userdb(addr) is None


def test_userdb_knows_only_existing_accounts(make_policy, new_addr):
    policy, addr = make_policy(), new_addr()
    assert policy.userdb(addr) is None
    created(policy, addr)
    assert json.loads(json.dumps(policy.userdb(addr)))["home"].endswith(addr)
    assert policy.userdb("../../etc@chat.example.org") is None


def test_resource_probe_reads_the_real_machine(make_config):
    from chatmail_services.doveauth.policy import ResourceProbe

    probe = ResourceProbe(make_config().mailboxes_dir)  # dir does not exist yet
    assert probe.load_1m() >= 0
    assert probe.available_memory() > 0
    assert probe.free_disk() > 0


def test_hash_password_uses_a_fresh_salt():
    assert hash_password("same-password") != hash_password("same-password")
