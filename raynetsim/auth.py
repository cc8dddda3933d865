"""HTTP Basic (user e-mail + API key) with `X-Instance-Name`, and the block of a client
address after more than 20 bad logins, for 60 minutes (info.description, "Špatné
přihlášení"). The block is judged on the simulator's clock, which tests can advance."""

from __future__ import annotations

import base64
import binascii
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from .store import Instance, Store, User

BAD_LOGINS_ALLOWED = 20
BLOCK_FOR = timedelta(minutes=60)


@dataclass
class AuthFailure(Exception):
    status: int
    message: str
    translated: str


@dataclass
class _Address:
    bad_logins: int = 0
    blocked_until: datetime | None = None


class LoginGuard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._addresses: dict[str, _Address] = {}

    def reset(self) -> None:
        with self._lock:
            self._addresses.clear()

    def check_not_blocked(self, address: str, now: datetime) -> None:
        with self._lock:
            state = self._addresses.get(address)
            if state and state.blocked_until:
                if now < state.blocked_until:
                    raise AuthFailure(403, "TooManyBadLoginsException",
                                      "Příliš mnoho neúspěšných přihlášení, přístup je na 60 "
                                      "minut zablokován.")
                self._addresses.pop(address)

    def record_failure(self, address: str, now: datetime) -> None:
        with self._lock:
            state = self._addresses.setdefault(address, _Address())
            state.bad_logins += 1
            if state.bad_logins > BAD_LOGINS_ALLOWED:
                state.blocked_until = now + BLOCK_FOR

    def blocked(self) -> dict[str, str]:
        with self._lock:
            return {a: s.blocked_until.isoformat() for a, s in self._addresses.items()
                    if s.blocked_until}


def authenticate(store: Store, guard: LoginGuard, address: str, now: datetime,
                 authorization: str | None, instance_name: str | None
                 ) -> tuple[Instance, User]:
    guard.check_not_blocked(address, now)
    try:
        instance, user = _credentials(store, authorization, instance_name)
    except AuthFailure:
        guard.record_failure(address, now)
        raise
    return instance, user


def _credentials(store: Store, authorization: str | None, instance_name: str | None
                 ) -> tuple[Instance, User]:
    unauthorized = AuthFailure(401, "AuthenticationException: Bad credentials",
                               "Neplatné přihlašovací údaje.")
    if not authorization or not authorization.startswith("Basic "):
        raise unauthorized
    try:
        email, _, api_key = base64.b64decode(authorization[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise unauthorized from exc
    instance = store.instances.get(instance_name or "")
    if instance is None:
        raise AuthFailure(401, "AuthenticationException: Unknown instance",
                          f"Instance {instance_name!r} neexistuje.")
    user = instance.users.get(email.lower())
    if user is None or user.api_key != api_key:
        raise unauthorized
    return instance, user
