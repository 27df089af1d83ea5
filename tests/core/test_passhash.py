"""SHA512-CRYPT through libcrypt, byte for byte what passlib (and Dovecot) make."""

import pytest
from passlib.hash import sha512_crypt

from chatmail_services.core import passhash

PASSWORDS = ["secret-password", "ünïcödé-pässwörd", "with \"quotes\" and \\ and tab\t", "x" * 200]


def test_libcrypt_is_found_on_this_system():
    assert passhash._crypt_r is not None  # Debian ships libcrypt1 with libc


@pytest.mark.parametrize("password", PASSWORDS)
def test_libcrypt_and_passlib_make_the_same_bytes(password):
    salt = passhash.new_salt()
    made = passhash.libcrypt_hash(password, salt)
    assert made == passhash.passlib_hash(password, salt)
    assert made.startswith(f"$6${salt}$") and "rounds=" not in made


@pytest.mark.parametrize("password", PASSWORDS)
def test_each_verifies_what_the_other_made(password):
    made = passhash.hash_password(password)
    assert made.startswith("{SHA512-CRYPT}$6$")
    assert sha512_crypt.verify(password, made[len("{SHA512-CRYPT}"):])
    assert not sha512_crypt.verify(password + "x", made[len("{SHA512-CRYPT}"):])
    by_passlib = sha512_crypt.using(rounds=5000).hash(password)
    salt = by_passlib.split("$")[2]
    assert passhash.libcrypt_hash(password, salt) == by_passlib


def test_a_password_libcrypt_refuses_is_hashed_by_passlib():
    long_password = "y" * 1000  # over libxcrypt's 512-byte passphrase limit
    assert passhash.libcrypt_hash(long_password, passhash.new_salt()) is None
    made = passhash.hash_password(long_password)
    assert sha512_crypt.verify(long_password, made[len("{SHA512-CRYPT}"):])


def test_a_nul_byte_never_reaches_libcrypt():
    # crypt_r would stop at the NUL and accept a shorter password too
    assert passhash.libcrypt_hash("abc\0def", passhash.new_salt()) is None
    with pytest.raises(ValueError):
        passhash.hash_password("abc\0def")


def test_salts_are_fresh_and_of_the_crypt_alphabet():
    salts = {passhash.new_salt() for _ in range(20)}
    assert len(salts) == 20
    assert all(len(s) == 16 and set(s) <= set(passhash._SALT_CHARS) for s in salts)


def test_every_character_of_the_alphabet_turns_up_in_salts():
    # 3200 characters: a character the mapping never picks would be missing,
    # while a fair pick misses one with odds of about 64 * (63/64)**3200, 1e-20.
    seen = set("".join(passhash.new_salt() for _ in range(200)))
    assert seen == set(passhash._SALT_CHARS)
