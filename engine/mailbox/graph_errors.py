"""What Graph, its token endpoint or the network raised, in words a person can act on."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import requests

from engine.mailbox import GRAPH_ROOT, wording
from engine.mailbox.base import (
    AuthenticationFailed,
    ImpersonationDenied,
    MailboxAccess,
    MailboxError,
    MailboxNotFound,
    NetworkRefused,
    ServiceUnavailable,
    status_words,
)
from security.outbound import AddressRefused


class GraphError(Exception):
    """A Graph (or token endpoint) answer >= 300 (a redirect is not followed)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        # Its text is the status alone: the server's words stay in `code` and `message`, for
        # the code that picks our words, and out of any log line or stored error.
        super().__init__(status_words(status))
        self.status, self.code, self.message = status, code, message


def error_from(status: int, body: Any) -> GraphError:
    """A GraphError from an answer's status and JSON body (`{"error": {"code", "message"}}`)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return GraphError(status, str(error.get("code") or ""), str(error.get("message") or ""))
    if isinstance(error, str):   # the token endpoint: {"error": "...", "error_description"}
        return GraphError(status, error, str(body.get("error_description") or ""))
    return GraphError(status, "", wording.short(str(body or "")))


# Entra's answers to a token request that a person can act on, by their AADSTS code.
def token_problem(error: GraphError, access: MailboxAccess) -> MailboxError:
    text = f"{error.code} {error.message}"
    lowered = text.lower()
    if "AADSTS700016" in text:
        return AuthenticationFailed(
            f"There is no application {access.client_id!r} in the tenant {access.tenant_id!r}: "
            "check the client id, and that the app is registered in this tenant.")
    if "AADSTS90002" in text or "AADSTS900023" in text or "authority configuration" in \
            lowered or ("tenant" in lowered and "not found" in lowered):
        return AuthenticationFailed(
            f"The tenant {access.tenant_id!r} does not exist: check the tenant id (a GUID, or "
            f"a domain such as contoso.onmicrosoft.com).")
    if "AADSTS7000215" in text or "AADSTS7000222" in text:
        return AuthenticationFailed(
            f"The client secret of the application {access.client_id!r} is wrong or has "
            "expired: create a new secret in Entra ID and store it here.")
    if "AADSTS700027" in text or "AADSTS700023" in text or "certificate" in text.lower():
        return AuthenticationFailed(
            f"The certificate of the application {access.client_id!r} was refused: upload its "
            "public certificate to the app registration in Entra ID.")
    if "AADSTS65001" in text or "consent" in text.lower():
        return _no_consent(access)
    # Only Entra's AADSTS number is repeated: the rest of the answer is the token endpoint's
    # own words, and a connection's token endpoint may be any server.
    number = re.search(r"AADSTS\d{1,9}", text)
    return AuthenticationFailed(f"Signing in as the application {access.client_id!r} failed "
                                f"({number.group(0) if number else status_words(error.status)}).")


def _no_consent(access: MailboxAccess) -> MailboxError:
    return ImpersonationDenied(
        f"The application {access.client_id!r} may not open {access.mailbox}: an administrator "
        "must grant it admin consent for the application permissions Mail.ReadWrite, "
        "Calendars.ReadWrite and Contacts.ReadWrite (and no application access policy may "
        "exclude this mailbox).")


def translate(exc: BaseException, access: MailboxAccess) -> MailboxError:
    """Whatever Graph, the token endpoint or the network raised, as a MailboxError in words.

    The error's code picks the words; what the server wrote (its message, its body) is never
    repeated, since a connection's Graph root or token endpoint may be any server."""
    if isinstance(exc, MailboxError):
        return exc
    if isinstance(exc, AddressRefused):
        return NetworkRefused(exc.message)
    host = urlsplit(access.endpoint or GRAPH_ROOT).hostname or access.endpoint
    if isinstance(exc, GraphError):
        code = exc.code
        if exc.status == 401:
            return AuthenticationFailed(
                f"Microsoft Graph refused the token of the application {access.client_id!r} "
                "(HTTP 401 Unauthorized).")
        if code == "MailboxNotEnabledForRESTAPI" or "MailboxNotEnabled" in code:
            return MailboxNotFound(
                f"The mailbox {access.mailbox} cannot be reached through Microsoft Graph: it "
                "has no Exchange Online licence, is inactive, or is hosted on-premises (sync "
                "it through an Exchange Server connection).")
        if exc.status == 403 or code in ("ErrorAccessDenied", "Authorization_RequestDenied"):
            return _no_consent(access)
        if (code in ("ErrorInvalidUser", "ResourceNotFound", "Request_ResourceNotFound",
                    "ErrorNonExistentMailbox", "MailboxNotFound") and "user" in \
                (code + exc.message).lower()) or code == "ErrorInvalidUser":
            return MailboxNotFound(f"There is no mailbox {access.mailbox} in this tenant.")
        if code in ("ErrorItemNotFound", "ErrorInvalidIdMalformed") and "folder" in \
                exc.message.lower():
            return wording.folder_gone()
        if exc.status in (429, 503) or code in ("ApplicationThrottled", "TooManyRequests"):
            return wording.busy(host)
        if exc.status >= 500:
            return ServiceUnavailable(f"Microsoft Graph answered {status_words(exc.status)}; "
                                      "the next run tries again.")
        return MailboxError(f"Microsoft Graph answered with an error ({status_words(exc.status)}).")
    text = str(exc).lower()
    if isinstance(exc, requests.exceptions.SSLError) or "certificate verify" in text:
        return wording.tls_failed(host, str(exc))
    if isinstance(exc, requests.exceptions.Timeout):
        return wording.no_answer_in_time(host)
    if isinstance(exc, requests.exceptions.ConnectionError | OSError):
        if wording.names_no_address(text):
            return wording.unresolvable(host)
        if "refused" in text:
            return wording.refused(host, access.endpoint)
        return ServiceUnavailable(wording.broke_off(host))
    return wording.connection_failed(host, exc)
