"""SHA512-CRYPT password hashes, `{SHA512-CRYPT}$6$<salt>$<hash>`, as Dovecot reads them.

The hash is made by the system's libcrypt (`crypt_r`, glibc's or libxcrypt's
on Debian 12 and 13) through ctypes: its C code runs without the GIL, so
several account creations hash on several CPUs at once while the reactor
keeps answering, and it takes a fraction of the pure-Python time. Python 3.13
has no `crypt` module, hence ctypes. Where libcrypt is missing or refuses a
password (longer than it takes, or holding a NUL byte), passlib makes the
same hash. Both produce glibc's default 5000 rounds, written without
`rounds=`, as existing relays store them (docs/storage.md).
"""

import ctypes
import ctypes.util
import secrets

from passlib.hash import sha512_crypt

PREFIX = "{SHA512-CRYPT}"
_SALT_CHARS = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SALT_LENGTH = 16
_SALT_TABLE = (_SALT_CHARS * 4).encode("ascii")  # byte value -> its character
# `struct crypt_data` is 32 KiB in libxcrypt and smaller in older glibc; a
# zeroed buffer of this size fits both (crypt_r(3): zero it before first use).
_CRYPT_DATA_SIZE = 64 * 1024
_PASSLIB = sha512_crypt.using(rounds=5000)


def _load_crypt_r():
    name = ctypes.util.find_library("crypt")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).crypt_r  # CDLL: the call releases the GIL
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    fn.restype = ctypes.c_char_p
    return fn


_crypt_r = _load_crypt_r()


def new_salt() -> str:
    """16 characters of the crypt alphabet from one read of the system's
    random source: each byte's value modulo 64 picks one (256 = 4 x 64, so
    every character is equally likely). `secrets.choice` per character read
    it 16 times, each read a system call that hands the GIL back and forth
    between a hashing thread and the reactor."""
    return secrets.token_bytes(_SALT_LENGTH).translate(_SALT_TABLE).decode("ascii")


def libcrypt_hash(password: str, salt: str):
    """`$6$salt$hash` from libcrypt, or None where it cannot make it."""
    secret = password.encode("utf-8")
    if _crypt_r is None or b"\0" in secret:
        return None
    data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    out = _crypt_r(secret, f"$6${salt}".encode("ascii"), data)
    if not out or not out.startswith(b"$6$"):  # "*0"/"*1" or NULL: refused
        return None
    return out.decode("ascii")


def passlib_hash(password: str, salt: str) -> str:
    return _PASSLIB.using(salt=salt).hash(password)


def hash_password(password: str) -> str:
    """`{SHA512-CRYPT}$6$...` of `password` with a fresh random salt."""
    salt = new_salt()
    return PREFIX + (libcrypt_hash(password, salt) or passlib_hash(password, salt))
