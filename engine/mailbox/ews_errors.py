"""Whatever exchangelib or the network raised, in words a person can act on."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from exchangelib import errors as ews_errors

from engine.mailbox.base import (
    AuthenticationFailed,
    ConnectionRefused,
    DnsFailure,
    FolderNotFound,
    ImpersonationDenied,
    MailboxAccess,
    MailboxError,
    MailboxNotFound,
    NetworkRefused,
    ServiceUnavailable,
    Throttled,
    TimedOut,
    TlsFailure,
    tls_reason,
)
from engine.mailbox.ews_protocol import UnexpectedAnswer
from security.outbound import AddressRefused


def translate_error(exc: BaseException, access: MailboxAccess) -> MailboxError:
    """Turn whatever exchangelib or the network raised into a MailboxError a person can act on.

    Only our own words, the status code and local (TLS, socket) errors reach the message:
    exchangelib's texts may carry what the server answered (headers, body, a redirect's
    target), which is never echoed."""
    host = urlsplit(access.endpoint).hostname or access.endpoint
    text = str(exc)
    if isinstance(exc, MailboxError):
        return exc
    if isinstance(exc, AddressRefused):
        return NetworkRefused(exc.message)
    if isinstance(exc, ews_errors.UnauthorizedError) or "InvalidClientError" in type(exc).__name__:
        return AuthenticationFailed(
            f"Authentication failed: the server refused the user name or password of "
            f"{access.username or access.client_id!r}.")
    if isinstance(exc, ews_errors.ErrorImpersonateUserDenied):
        return ImpersonationDenied(
            f"The service account {access.username or access.client_id!r} may not impersonate "
            f"{access.mailbox}: grant it the ApplicationImpersonation role.")
    if isinstance(exc, ews_errors.ErrorNonExistentMailbox | ews_errors.ErrorMailboxStoreUnavailable
                  ) and "Unavailable" not in type(exc).__name__:
        return MailboxNotFound(f"There is no mailbox {access.mailbox} on {host}.")
    if isinstance(exc, ews_errors.ErrorFolderNotFound):
        return FolderNotFound("The folder no longer exists in the mailbox: choose it again.")
    if isinstance(exc, ews_errors.RateLimitError):
        return Throttled(f"{host} kept asking to slow down for longer than this run may wait "
                         f"({int(access.throttle_budget_seconds)} s); the next run goes on.")
    if isinstance(exc, ews_errors.ErrorServerBusy):
        return Throttled(f"{host} is busy and asked to slow down; the next run goes on.")
    if isinstance(exc, UnexpectedAnswer):
        return ServiceUnavailable(
            f"{host} does not answer as an Exchange Web Services endpoint (it answered {exc}; "
            "EWS disabled, or a wrong URL?).")
    if isinstance(exc, ews_errors.ResponseMessageError | ews_errors.SOAPError) and not \
            isinstance(exc, ews_errors.ErrorTimeoutExpired):   # exchangelib's network error
        # The class is the response code Exchange sent (exchangelib's fixed set); its text is
        # the server's own and stays out.
        return MailboxError(f"Exchange answered with the error {type(exc).__name__}.")
    if isinstance(exc, ews_errors.TransportError | ews_errors.ErrorTimeoutExpired | OSError):
        lowered = text.lower()
        if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
            return TlsFailure(f"The TLS connection to {host} failed{tls_reason(text)}. Check "
                              "the certificate, or turn TLS verification off for this "
                              "connection.")
        if ("name or service not known" in lowered or "nameresolution" in lowered
                or "getaddrinfo" in lowered or "nodename nor servname" in lowered):
            return DnsFailure(f"The server name {host} cannot be resolved (DNS).")
        if "refused" in lowered:
            return ConnectionRefused(f"{host} refused the connection: nothing listens on "
                                     f"port {urlsplit(access.endpoint).port or 443}.")
        if "timed out" in lowered or "timeout" in lowered or "read timed" in lowered:
            return TimedOut(f"{host} did not answer in time.")
        if isinstance(exc, ews_errors.ErrorTimeoutExpired):
            return TimedOut(f"The connection to {host} broke off before an answer came.")
    if isinstance(exc, ews_errors.RedirectError | ews_errors.MalformedResponseError):
        return ServiceUnavailable(
            f"{host} does not answer as an Exchange Web Services endpoint (EWS disabled, or a "
            "wrong URL?).")
    return MailboxError(f"The connection to {host} failed ({type(exc).__name__}).")


def short(text: str, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit] + "…"
