"""core/admission: the rules shared by create-on-login and /new, per registration mode."""

import pytest

from chatmail_services.core.admission import Admission, Refusal
from chatmail_services.core.store import StoreUnavailable, open_store
from chatmail_services.core.store.registration import open_registration
from chatmail_services.doveauth.policy import AccountPolicy

from ..web.conftest import FixedProbe

ADDR = "abcdefghi@chat.example.org"
PASSWORD = "secret-password"



@pytest.fixture
def config(make_config):
    return make_config()


@pytest.fixture
def registration(config):
    return open_registration(config)


@pytest.mark.parametrize("mode,on_login,invited", [
    ("open", None, None),
    ("invite", Refusal.INVITE_ONLY, None),
    ("closed", Refusal.REGISTRATION_CLOSED, Refusal.REGISTRATION_CLOSED),
])
def test_each_mode_decides_for_login_and_invited_callers(config, registration, mode,
                                                         on_login, invited):
    registration.set_mode(mode)
    admission = Admission(config, registration, FixedProbe())
    assert admission.check(ADDR, PASSWORD) is on_login
    assert admission.check(ADDR, PASSWORD, invited=True) is invited


def test_the_switch_file_closes_whatever_the_mode(config, registration):
    open(config.doveauth.nocreate_file, "w").close()
    admission = Admission(config, registration, FixedProbe())
    assert admission.check(ADDR, PASSWORD, invited=True) is Refusal.REGISTRATION_CLOSED


def test_shape_rules_come_before_the_mode(config, registration):
    registration.set_mode("closed")
    assert Admission(config, registration, FixedProbe()).check(
        "short@chat.example.org", PASSWORD) is Refusal.LOCALPART_LENGTH


def test_an_unreadable_mode_is_a_temporary_failure_not_an_open_door(config):
    class Down:
        def get_mode(self):
            raise StoreUnavailable("redis unreachable")

    with pytest.raises(StoreUnavailable):
        Admission(config, Down(), FixedProbe()).check(ADDR, PASSWORD)


def test_doveauth_refuses_create_on_login_in_the_invite_mode_but_logs_in_accounts(
        config, registration):
    store = open_store(config)
    policy = AccountPolicy(config, store, FixedProbe(), hasher=lambda pw: "{PLAIN}" + pw,
                           registration=registration)
    assert policy.passdb(ADDR, PASSWORD).created
    registration.set_mode("invite")
    assert policy.passdb("otherone1@chat.example.org", PASSWORD).refusal is Refusal.INVITE_ONLY
    assert policy.passdb(ADDR, PASSWORD).fields["password"] == "{PLAIN}" + PASSWORD
