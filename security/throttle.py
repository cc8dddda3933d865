"""Sign-in throttling: too many failures for one account or from one address lock it out.

Counted in the database, so every web worker process sees the same failures. The limits
hold within a sliding window: an account (the user name as typed, whether or not such a
user exists, so that the answer never tells which accounts exist) or a client address with
`limit` failures in the last `window` is refused, even with the right password, until the
oldest of those failures leaves the window.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from security.client_address import client_address
from security.models import SignInFailure


@dataclass(frozen=True)
class Limits:
    per_account: int
    per_address: int
    window: dt.timedelta


def limits() -> Limits:
    return Limits(
        per_account=getattr(settings, "SIGNIN_FAILURES_PER_ACCOUNT", 5),
        per_address=getattr(settings, "SIGNIN_FAILURES_PER_ADDRESS", 20),
        window=dt.timedelta(seconds=getattr(settings, "SIGNIN_LOCKOUT_SECONDS", 15 * 60)),
    )


def _hash(scope: str, value: str) -> str:
    message = f"{scope}:{value}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def _account_key(username: str) -> str:
    # "Bob", " bob " and "BOB" are one account to a guesser; count them together.
    return _hash(SignInFailure.Scope.ACCOUNT, username.strip().casefold())


def _address_key(request: HttpRequest) -> str:
    return _hash(SignInFailure.Scope.ADDRESS, client_address(request))


def _keys(request: HttpRequest, username: str) -> list[tuple[str, str, int]]:
    current = limits()
    return [(SignInFailure.Scope.ACCOUNT, _account_key(username), current.per_account),
            (SignInFailure.Scope.ADDRESS, _address_key(request), current.per_address)]


def lockout_remaining(request: HttpRequest, username: str) -> dt.timedelta | None:
    """How long sign-in stays refused for this user name or this client; None: it is not."""
    now = timezone.now()
    window = limits().window
    remaining: dt.timedelta | None = None
    for scope, key, limit in _keys(request, username):
        recent = (SignInFailure.objects.filter(scope=scope, key=key, at__gt=now - window)
                  .order_by("-at").values_list("at", flat=True))
        # The limit-th newest failure: the lockout lasts until it leaves the window.
        counted = list(recent[limit - 1:limit])
        if counted:
            ends_in = counted[0] + window - now
            remaining = ends_in if remaining is None else max(remaining, ends_in)
    return remaining


def record_failure(request: HttpRequest, username: str) -> None:
    now = timezone.now()
    SignInFailure.objects.bulk_create(
        [SignInFailure(scope=scope, key=key, at=now) for scope, key, _ in _keys(request, username)]
    )
    # Failures out of the window count no longer: the table stays small.
    SignInFailure.objects.filter(at__lte=now - limits().window).delete()


def forget_account_failures(username: str) -> None:
    """After a successful sign-in the account starts afresh (the address does not)."""
    SignInFailure.objects.filter(
        scope=SignInFailure.Scope.ACCOUNT, key=_account_key(username)).delete()
