"""Whatever exchangelib or the network raised, in words a person can act on."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from exchangelib import errors as exchange_errors

from engine.mailbox import wording
from engine.mailbox.base import (
    AuthenticationFailed,
    ImpersonationDenied,
    MailboxAccess,
    MailboxError,
    MailboxNotFound,
    NetworkRefused,
    ServiceUnavailable,
    TimedOut,
)
from engine.mailbox.ews_protocol import UnexpectedAnswer
from security.outbound import AddressRefused

# What Exchange answers for an item that is not in the mailbox: gone (ErrorItemNotFound), or an
# id it cannot parse (ErrorInvalidIdMalformed), which names no item there either, e.g. one
# stored from another source. Both are a missing item to the engine.
ITEM_MISSING = exchange_errors.ErrorItemNotFound | exchange_errors.ErrorInvalidIdMalformed


def folder_answers(answers: list[Any]) -> list[Any]:
    """The answers to a request on one folder, raising what Exchange said of the folder itself.

    exchangelib raises ErrorFolderNotFound but hands ErrorInvalidIdMalformed back as an
    answer, for a folder id Exchange cannot parse as for an item's: read as the folder's
    items, it would pass for an empty folder (or break the caller). Raised inside
    `_errors()` it becomes "the folder no longer exists"."""
    for answer in answers:
        if isinstance(answer, exchange_errors.ErrorInvalidIdMalformed):
            raise answer
    return answers


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
    if isinstance(exc, exchange_errors.UnauthorizedError) \
            or "InvalidClientError" in type(exc).__name__:
        return AuthenticationFailed(
            f"Authentication failed: the server refused the user name or password of "
            f"{access.username or access.client_id!r}.")
    if isinstance(exc, exchange_errors.ErrorImpersonateUserDenied):
        return ImpersonationDenied(
            f"The service account {access.username or access.client_id!r} may not impersonate "
            f"{access.mailbox}: grant it the ApplicationImpersonation role.")
    if isinstance(exc, exchange_errors.ErrorNonExistentMailbox
                  | exchange_errors.ErrorMailboxStoreUnavailable
                  ) and "Unavailable" not in type(exc).__name__:
        return MailboxNotFound(f"There is no mailbox {access.mailbox} on {host}.")
    if isinstance(exc, exchange_errors.ErrorFolderNotFound
                  | exchange_errors.ErrorInvalidIdMalformed):
        # Raised (not answered per item) only for the folder a request names: a stored
        # folder id Exchange cannot parse names no folder.
        return wording.folder_gone()
    if isinstance(exc, exchange_errors.RateLimitError):
        return wording.budget_used_up(host, access.throttle_budget_seconds)
    if isinstance(exc, exchange_errors.ErrorServerBusy):
        return wording.busy(host)
    if isinstance(exc, UnexpectedAnswer):
        return ServiceUnavailable(
            f"{host} does not answer as an Exchange Web Services endpoint (it answered {exc}; "
            "EWS disabled, or a wrong URL?).")
    if isinstance(exc, exchange_errors.ResponseMessageError | exchange_errors.SOAPError) and not \
            isinstance(exc, exchange_errors.ErrorTimeoutExpired):   # exchangelib's network error
        # The class is the response code Exchange sent (exchangelib's fixed set); its text is
        # the server's own and stays out.
        return MailboxError(f"Exchange answered with the error {type(exc).__name__}.")
    if isinstance(exc, exchange_errors.TransportError | exchange_errors.ErrorTimeoutExpired
                  | OSError):
        lowered = text.lower()
        if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
            return wording.tls_failed(host, text)
        if wording.names_no_address(lowered):
            return wording.unresolvable(host)
        if "refused" in lowered:
            return wording.refused(host, access.endpoint)
        if "timed out" in lowered or "timeout" in lowered or "read timed" in lowered:
            return wording.no_answer_in_time(host)
        if isinstance(exc, exchange_errors.ErrorTimeoutExpired):
            return TimedOut(wording.broke_off(host))
    if isinstance(exc, exchange_errors.RedirectError | exchange_errors.MalformedResponseError):
        return ServiceUnavailable(
            f"{host} does not answer as an Exchange Web Services endpoint (EWS disabled, or a "
            "wrong URL?).")
    return wording.connection_failed(host, exc)
