"""How the EWS backend reaches a server: exchangelib's configuration per connection (version,
credentials, a token endpoint of its own), throttling waited out within a budget per run,
TLS verification per endpoint and the requests each thread sent."""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from exchangelib import (
    BASIC,
    NTLM,
    OAUTH2,
    Build,
    Configuration,
    Credentials,
    FaultTolerance,
    Identity,
    OAuth2Credentials,
    Version,
)
from exchangelib import errors as exchange_errors
from exchangelib.protocol import BaseProtocol, CachingProtocol
from exchangelib.util import _get_retry_after

from engine.mailbox.base import Auth, MailboxAccess, status_words
from security.outbound import CheckedAdapter

DEFAULT_VERSION = "Exchange2016"
VERSIONS = {"Exchange2013": Build(15, 0, 516, 32), "Exchange2013_SP1": Build(15, 0, 847, 32),
            "Exchange2016": Build(15, 1, 2507, 6)}


# --- retrying: throttling is waited out within a budget per run, 401 never -----------------
class _RunBudget(threading.local):
    deadline: float | None = None


run_budget = _RunBudget()


class RetryPolicy(FaultTolerance):
    """FaultTolerance that fails fast on 401, retries 429, and waits at most a run's budget."""

    def raise_response_errors(self, response: Any) -> Any:
        if response.status_code == 401:
            raise exchange_errors.UnauthorizedError(f"Invalid credentials for {response.url}")
        if response.status_code == 429:
            raise exchange_errors.ErrorServerBusy("Caused by HTTP 429 response",
                                             back_off=_get_retry_after(response))
        try:
            return super().raise_response_errors(response)
        except (exchange_errors.MalformedResponseError, exchange_errors.CASError):
            # exchangelib writes the answer's headers and body (or a redirect's target) into
            # these; what an unknown server answered is never echoed into a page, a run or a
            # log: the status says enough (issue: an EWS URL pointed at another service).
            raise UnexpectedAnswer(response.status_code) from None

    def back_off(self, seconds: float | None) -> None:
        wait = self.DEFAULT_BACKOFF if seconds is None else seconds
        deadline = run_budget.deadline
        if deadline is not None and time.monotonic() + wait > deadline:
            raise exchange_errors.RateLimitError("Throttling budget of this run used up", wait=wait)
        super().back_off(seconds)


class UnexpectedAnswer(exchange_errors.MalformedResponseError):
    """An HTTP answer that is no EWS answer, known by its status code alone."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(status_words(status))


# --- TLS verification per endpoint ----------------------------------------------------------
_unverified_endpoints: set[str] = set()


class _Traffic(threading.local):
    requests = 0


traffic = _Traffic()


class _PerEndpointTlsAdapter(CheckedAdapter):
    """exchangelib picks one adapter class for the whole process (its token requests use it
    too); this one connects only where the outbound address policy allows
    (security/outbound.py), lets a connection whose administrator turned TLS verification off
    skip it, and only that connection, and counts the requests each thread sends, for the
    run's history."""

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if any(request.url.startswith(prefix) for prefix in _unverified_endpoints):
            kwargs["verify"] = False
        response = super().send(request, *args, **kwargs)
        # NTLM's handshake answers 401 twice before the real answer: count operations only.
        if response.status_code != 401 or "WWW-Authenticate" not in response.headers:
            traffic.requests += 1
        return response


BaseProtocol.HTTP_ADAPTER_CLS = _PerEndpointTlsAdapter
BaseProtocol.TIMEOUT = 60


class _TokenUrlCredentials(OAuth2Credentials):
    """OAuth2 client credentials with an overridable token endpoint (exchangelib hard-codes
    Microsoft's), so a national cloud, a proxy or the simulator can be used."""

    def __init__(self, *args: Any, token_endpoint: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token_endpoint = token_endpoint

    @property
    def token_url(self) -> str:
        return self._token_endpoint or super().token_url

    def __hash__(self) -> int:
        return hash((super().__hash__(), self._token_endpoint))


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Settings version per protocol cache key: a changed connection drops the cached protocol.
_seen_settings: dict[tuple[str, Any], str] = {}
_seen_lock = threading.Lock()


def _credentials(access: MailboxAccess) -> Any:
    if access.auth is Auth.OAUTH2:
        if _is_loopback(access.endpoint) and _is_loopback(access.token_url or access.endpoint):
            # requests-oauthlib refuses plain http; allowed only for a server on this machine.
            os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
        return _TokenUrlCredentials(
            client_id=access.client_id, client_secret=access.secret, tenant_id=access.tenant_id,
            identity=Identity(primary_smtp_address=access.mailbox),
            token_endpoint=access.token_url)
    return Credentials(access.username, access.secret)


def configuration(access: MailboxAccess) -> Configuration:
    credentials = _credentials(access)
    key = (access.endpoint, credentials)
    with _seen_lock:
        if _seen_settings.get(key, access.settings_version) != access.settings_version:
            _drop_cached_protocol(key)
        _seen_settings[key] = access.settings_version
    if access.verify_tls:
        _unverified_endpoints.discard(access.endpoint)
    else:
        _unverified_endpoints.add(access.endpoint)
    build = VERSIONS.get(access.server_version or DEFAULT_VERSION, VERSIONS[DEFAULT_VERSION])
    auth_type = {Auth.NTLM: NTLM, Auth.BASIC: BASIC, Auth.OAUTH2: OAUTH2}[access.auth]
    return Configuration(
        service_endpoint=access.endpoint, credentials=credentials, auth_type=auth_type,
        version=Version(build=build), max_connections=2,
        retry_policy=RetryPolicy(max_wait=access.throttle_budget_seconds))


def _drop_cached_protocol(key: tuple[str, Any]) -> None:
    with CachingProtocol._protocol_cache_lock:
        entry = CachingProtocol._protocol_cache.pop(key, None)
    if entry is not None and not isinstance(entry[0], Exception):
        entry[0].close()
