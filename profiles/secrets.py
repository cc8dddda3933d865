"""Secrets at rest: Fernet tokens made with the keys in ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so a new key can be put first and old tokens
re-encrypted (`manage.py rotate_secrets`) before the old key is dropped.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from security import log_redaction


class SecretKeyError(Exception):
    """ENCRYPTION_KEYS is missing, malformed, or lacks the key a stored secret needs."""


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise SecretKeyError(
            "No encryption key is configured: set ENCRYPTION_KEYS to one or more "
            "comma-separated Fernet keys (generate one with `python -c 'from "
            "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)."
        )
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.strip().encode()))
        except (ValueError, TypeError) as exc:
            raise SecretKeyError(
                f"ENCRYPTION_KEYS entry {position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from exc
    return MultiFernet(fernets)


def current_keys() -> MultiFernet:
    return _multifernet(tuple(k for k in settings.ENCRYPTION_KEYS if k.strip()))


def encrypt(plaintext: str) -> str:
    log_redaction.remember(plaintext)
    return current_keys().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        plaintext = current_keys().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretKeyError(
            "A stored secret cannot be decrypted with any key in ENCRYPTION_KEYS: "
            "the key that encrypted it was removed or changed. Put that key back "
            "(after the new one) or enter the secret again."
        ) from exc
    # Whatever the process does with it next, it never shows in a log line.
    log_redaction.remember(plaintext)
    return plaintext


def reencrypt(token: str) -> str:
    """The same secret encrypted with the first key (a no-op in meaning, not in bytes)."""
    try:
        return current_keys().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretKeyError(
            "A stored secret cannot be decrypted with any key in ENCRYPTION_KEYS, "
            "so it cannot be re-encrypted."
        ) from exc
