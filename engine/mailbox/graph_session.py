"""The HTTP session every Graph and token request goes through: the outbound address policy,
TLS verification per request, redirects reported rather than followed, a timeout."""

from __future__ import annotations

from typing import Any

import requests

from security.outbound import checked_session

TIMEOUT = 60                  # seconds per request


class Session(requests.Session):
    """A session whose `verify` holds per request: requests lets REQUESTS_CA_BUNDLE and
    friends override a session's `verify = False` (psf/requests#3829)."""

    def __init__(self) -> None:
        super().__init__()
        checked_session(self)   # every connection through the outbound address policy

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("verify", self.verify)
        kwargs.setdefault("timeout", TIMEOUT)
        # Graph and the identity platform answer where they are asked: a redirect means the
        # URL is not theirs, and is reported (by its status) rather than followed.
        kwargs.setdefault("allow_redirects", False)
        return super().request(method, url, *args, **kwargs)
