"""The registration role's contract, run over every backend: the files store
and a real redis-server. Several instances on one state stand for several
hosts (Redis) or several daemons on one host (files)."""

import threading

import pytest

from chatmail_services.core.store.registration import (
    KEEP_EXPIRED, InviteUse, new_token, open_registration, token_hash,
)

NOW = 1_700_000_000.0
DAY = 86400


@pytest.fixture(params=["files", "redis"])
def make_registration(request, make_config):
    if request.param == "files":
        config = make_config()
    else:
        config = make_config(storage=request.getfixturevalue("fresh_redis").url)
    made = []

    def make():
        made.append(open_registration(config))
        return made[-1]

    yield make
    for registration in made:
        registration.close()


def invite(registration, uses=1, days=7):
    token = new_token()
    registration.add_invite(token_hash(token), uses, NOW, NOW + days * DAY)
    return token_hash(token)


def test_mode_is_open_until_set_and_shared_by_every_instance(make_registration):
    one, other = make_registration(), make_registration()
    assert one.get_mode() == "open"
    for mode in ("invite", "closed", "open", "invite"):
        one.set_mode(mode)
        assert other.get_mode() == mode


def test_an_unknown_mode_is_refused(make_registration):
    with pytest.raises(ValueError):
        make_registration().set_mode("maybe")


def test_a_one_use_invite_admits_once(make_registration):
    registration = make_registration()
    hashed = invite(registration)
    assert registration.use_invite(hashed, NOW + 1) is InviteUse.OK
    assert registration.use_invite(hashed, NOW + 2) is InviteUse.USED_UP


def test_uses_are_counted_across_instances(make_registration):
    one, other = make_registration(), make_registration()
    hashed = invite(one, uses=3)
    answers = [r.use_invite(hashed, NOW) for r in (one, other, one, other)]
    assert answers == [InviteUse.OK] * 3 + [InviteUse.USED_UP]
    assert [i.uses_left for i in other.list_invites(NOW)] == [0]


def test_an_invite_expires(make_registration):
    registration = make_registration()
    hashed = invite(registration, uses=5, days=1)
    assert registration.use_invite(hashed, NOW + DAY - 1) is InviteUse.OK
    assert registration.use_invite(hashed, NOW + DAY) is InviteUse.EXPIRED
    assert registration.list_invites(NOW + DAY)[0].uses_left == 4


def test_an_unknown_token_is_unknown(make_registration):
    registration = make_registration()
    invite(registration)
    assert registration.use_invite(token_hash("guessed"), NOW) is InviteUse.UNKNOWN


def test_concurrent_uses_of_a_one_use_invite_admit_exactly_one(make_registration):
    instances = [make_registration() for _ in range(8)]
    hashed = invite(instances[0])
    barrier, answers = threading.Barrier(len(instances)), []

    def use(registration):
        barrier.wait()
        answers.append(registration.use_invite(hashed, NOW))

    threads = [threading.Thread(target=use, args=(r,)) for r in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.value for a in answers) == ["ok"] + ["used_up"] * 7


def test_a_returned_use_can_be_used_again_but_never_exceeds_uses(make_registration):
    registration = make_registration()
    hashed = invite(registration, uses=1)
    registration.return_invite(hashed)  # nothing used yet: nothing to give back
    assert registration.use_invite(hashed, NOW) is InviteUse.OK
    registration.return_invite(hashed)
    assert registration.use_invite(hashed, NOW) is InviteUse.OK
    assert registration.use_invite(hashed, NOW) is InviteUse.USED_UP


def test_list_shows_ids_not_tokens_and_revoke_deletes(make_registration):
    registration = make_registration()
    first, second = invite(registration, uses=2), invite(registration, uses=3)
    listed = registration.list_invites(NOW)
    assert {i.id for i in listed} == {first[:16], second[:16]}
    assert {(i.uses, i.uses_left) for i in listed} == {(2, 2), (3, 3)}
    assert registration.revoke_invite(first[:16]) is True
    assert registration.revoke_invite(first[:16]) is False
    assert registration.use_invite(first, NOW) is InviteUse.UNKNOWN
    assert [i.id for i in registration.list_invites(NOW)] == [second[:16]]


def test_revoke_accepts_only_an_id(make_registration):
    registration = make_registration()
    invite(registration)
    assert registration.revoke_invite("*") is False
    assert registration.revoke_invite("") is False
    assert len(registration.list_invites(NOW)) == 1


def test_long_expired_invites_are_forgotten(make_registration):
    registration = make_registration()
    invite(registration, days=1)
    assert len(registration.list_invites(NOW + DAY + KEEP_EXPIRED - 1)) == 1
    assert registration.list_invites(NOW + DAY + KEEP_EXPIRED) == []
