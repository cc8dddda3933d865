"""Graph error answers: `{"error": {"code", "message", "innerError"}}` with the real codes.

Each raise site names the HTTP status and the code Graph uses for that case; the
body shape (with `innerError` request ids and date) is the one Graph documents.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

# Default messages for the codes the simulator answers, worded as Graph words them.
MESSAGES = {
    "InvalidAuthenticationToken": "Access token is empty.",
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "Authorization_RequestDenied": "Insufficient privileges to complete the operation.",
    "ErrorInvalidUser": "The requested user is invalid.",
    "MailboxNotEnabledForRESTAPI": "The mailbox is either inactive, soft-deleted, or is hosted "
                                   "on-premise.",
    "ErrorItemNotFound": "The specified object was not found in the store.",
    "ErrorInvalidIdMalformed": "Id is malformed.",
    "ResourceNotFound": "Resource not found for the segment.",
    "BadRequest": "Invalid request.",
    "ErrorInvalidRequest": "The request is invalid.",
    "ErrorInvalidProperty": "The property is invalid.",
    "ErrorInvalidUrlQuery": "The query is invalid.",
    "ErrorInvalidUrlQueryFilter": "The query filter contains one or more invalid nodes.",
    "SyncStateNotFound": "The sync state generation is not found. The delta token is expired "
                         "and data must be synchronized again.",
    "ApplicationThrottled": "Application is over its MailboxConcurrency limit.",
    "TooManyRequests": "Too many requests.",
    "ServiceUnavailable": "The service is temporarily unavailable.",
    "InternalServerError": "An internal server error occurred. The operation failed.",
    "ErrorIrresolvableConflict": "The send or update operation could not be performed because "
                                 "the change key passed in the request does not match the "
                                 "current change key for the item.",
    "ErrorCalendarOccurrenceIsDeletedFromRecurrence": "Occurrence is deleted from the "
                                                      "recurrence.",
    "ErrorOccurrenceCrossingBoundary": "The occurrence couldn't be moved because it would "
                                       "cross the boundary of an adjacent occurrence.",
    "ErrorPropertyValidationFailure": "At least one property failed validation.",
    "UnknownError": "",
}


class GraphError(Exception):
    """An error answer; `headers` carries e.g. Retry-After or Location."""

    def __init__(self, status: int, code: str, message: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = MESSAGES.get(code, code) if message is None else message
        self.headers = headers or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        request_id = request_id or str(uuid.uuid4())
        return {"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }}


def not_found(what: str = "") -> GraphError:
    return GraphError(404, "ErrorItemNotFound", None if not what else
                      f"The specified object was not found in the store. ({what})")


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)
