"""Secrets the site has to read back, stored sealed: a second factor's shared secret, a chat webhook's address,
a host's private calendar address. A password or a one-time link is hashed instead; these cannot be, because
the app itself uses them. A copy of the database (a backup, a dump handed to support) then reveals none of them.

`SealedString` is a column type: the value is sealed as it is written and opened as it is read, with Fernet
(AES-128-CBC and HMAC-SHA256, from `cryptography`) under a key derived from SECRET_KEY. Flask's
SECRET_KEY_FALLBACKS open what older keys sealed, so SECRET_KEY can be rotated; a value no key opens is an
error that says so, never a silent None (that would turn a second factor off).

Sealing is randomized, so a sealed column cannot be compared with a value in SQL; compare the sealed text
itself (`sa.type_coerce(column, sa.String)`) when a compare-and-set needs it.
"""

import base64
import functools

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

PREFIX = "sealed1:"


class SealError(RuntimeError):
    pass


def _fernet_key(secret_key: str | bytes) -> Fernet:
    material = secret_key.encode() if isinstance(secret_key, str) else secret_key
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"meander sealed columns").derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


@functools.lru_cache(maxsize=8)
def _keys(secret_key: str | bytes, fallbacks: tuple) -> MultiFernet:
    return MultiFernet([_fernet_key(secret_key), *(_fernet_key(old) for old in fallbacks)])


def _current_keys() -> MultiFernet:
    config = current_app.config
    return _keys(config["SECRET_KEY"], tuple(config.get("SECRET_KEY_FALLBACKS") or ()))


def seal(value: str) -> str:
    return PREFIX + _current_keys().encrypt(value.encode()).decode("ascii")


def unseal(stored: str) -> str:
    if not stored.startswith(PREFIX):
        raise SealError("a sealed column holds an unsealed value: run the migrations (flask db upgrade)")
    try:
        return _current_keys().decrypt(stored.removeprefix(PREFIX).encode("ascii")).decode()
    except InvalidToken:
        raise SealError(
            "a sealed value opens with none of the keys: SECRET_KEY changed without the old key in SECRET_KEY_FALLBACKS"
        ) from None


class SealedString(sa.TypeDecorator):
    """A string column whose value is stored sealed (see the module's docstring)."""

    # No length: a sealed value is about 4/3 of 57 bytes plus its own length, and it is never typed by anyone.
    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else seal(value)

    def process_result_value(self, value, dialect):
        return None if value is None else unseal(value)
