"""The address of the client a request came from, through trusted proxies."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, or behind a trusted proxy the last address it added to X-Forwarded-For.

    Only proxies in TRUSTED_PROXIES are believed: anyone else could write any address into
    the header. nginx appends the address it was reached from, so walking the list from the
    right past our own proxies finds the client; what lies further left is the client's word.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = set(settings.TRUSTED_PROXIES)
    if remote not in trusted:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for address in reversed([part for part in forwarded if part]):
        if address not in trusted:
            return address
    return remote
