"""Routing of Graph requests: mailbox access, throttling, faults, then the handler.

`dispatch` serves one request (a direct one or one of a `$batch`) and always returns a
`GraphResponse`; the HTTP side (`http.py`) writes it. Route names (`contacts.delta`,
`events.patch`…) are what fault injection's `operation` and the request counters use.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..faults import Fault
from ..store import Principal
from .context import GraphContext, GraphRequest, GraphResponse
from .errors import GraphError
from .state import ConcurrencyExceeded

Handler = Callable[..., GraphResponse]
USER_PATH = re.compile(r"^/(?:users/([^/]+)|me)(/.*)?$", re.IGNORECASE)
SUBSCRIPTIONS_PATH = re.compile(r"^/subscriptions(?:/[^/]+)?/?$", re.IGNORECASE)


class ConnectionResetFault(Exception):
    """The `connection_reset` fault: the HTTP side drops the TCP connection (RST)."""


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str
    handler: Handler


ROUTES: list[Route] = []


def route(method: str, template: str, name: str) -> Callable[[Handler], Handler]:
    """Register `handler(ctx, **segments)` for `template` below /users/{id}/.

    `{name}` matches one path segment; segment names match case-insensitively like Graph.
    """
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(template).replace(r"\{", "{")
                   .replace(r"\}", "}"))
    pattern = re.compile(f"^/{regex}/?$", re.IGNORECASE)

    def register(fn: Handler) -> Handler:
        ROUTES.append(Route(method, pattern, name, fn))
        return fn
    return register


def load_routes() -> list[Route]:
    # Imported for their registration side effect.
    from . import contacts, events, folders, messages, outlook  # noqa: F401
    return ROUTES


def _match(method: str, rest: str) -> tuple[Route, dict[str, str]]:
    allowed = False
    for candidate in ROUTES:
        found = candidate.pattern.match(rest)
        if found is None:
            continue
        if candidate.method == method:
            return candidate, found.groupdict()
        allowed = True
    if allowed:
        raise GraphError(405, "Request_BadRequest",
                         f"The HTTP method '{method}' is not allowed for this resource.")
    segment = rest.strip("/").split("/")[-1] if rest.strip("/") else ""
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def _mailbox(server: Any, principal: Principal, segment: str | None) -> str:
    """Resolve /users/{id|upn} or /me and check the caller may open that mailbox."""
    store = server.store
    if principal.app is not None and not principal.app.admin_consent:
        # The token was issued, but nobody granted the application permissions.
        raise GraphError(403, "ErrorAccessDenied")
    if segment is None:
        if principal.user is None:
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated "
                                                "authentication flow.")
        address = principal.user.address
    else:
        address = segment.lower()
    with store.lock:
        exists = address in store.mailboxes
    if not exists:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{segment}' is invalid.")
    if address in server.graph.unlicensed:
        raise GraphError(404, "MailboxNotEnabledForRESTAPI")
    if principal.app is not None:
        if not principal.may_impersonate(address):
            raise GraphError(403, "ErrorAccessDenied")
    elif principal.user is None or not principal.user.may_open(address):
        raise GraphError(403, "ErrorAccessDenied")
    return address


def fault_response(fault: Fault) -> GraphResponse | None:
    """Graph's answer for an injected fault; None = go on (after a delay or hold)."""
    p = fault.params
    retry = {"Retry-After": str(p.get("retry_after", 1))}
    kind = fault.kind
    error: GraphError
    if kind == "connection_reset":
        raise ConnectionResetFault()
    if kind in ("delay", "hold"):
        return None
    if kind == "http_429":
        error = GraphError(429, p.get("response_code", "TooManyRequests"),
                           p.get("message"), retry)
    elif kind in ("http_503", "server_busy"):
        error = GraphError(503, "ServiceUnavailable", p.get("message"), retry)
    elif kind in ("http_500", "http_500_plain"):
        error = GraphError(500, "InternalServerError", p.get("message"))
    elif kind == "http_401":
        error = GraphError(401, "InvalidAuthenticationToken",
                           "Lifetime validation failed, the token is expired.")
    elif kind == "invalid_sync_state":
        error = GraphError(410, "SyncStateNotFound")
    elif kind == "irresolvable_conflict":
        error = GraphError(412, "ErrorIrresolvableConflict")
    else:   # soap_fault / response_error: any code, status given or 400
        error = GraphError(int(p.get("status", 400)),
                           p.get("response_code", "ErrorInvalidRequest"), p.get("message"))
    return error_response(error)


def error_response(error: GraphError) -> GraphResponse:
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="", authorization_uri='
                           '"https://login.microsoftonline.com/common/oauth2/authorize", '
                           'client_id="00000003-0000-0000-c000-000000000000"')
    return GraphResponse(error.status, error.body(), headers)


def _subscriptions(server: Any, principal: Principal, request: GraphRequest,
                   base_url: str) -> GraphResponse:
    """`/subscriptions`: no mailbox in the path and no store lock (the validation
    handshake calls the client back and may take seconds)."""
    from .subscriptions import handle
    name = f"subscriptions.{request.method.lower()}"
    with server.graph.lock:
        server.graph.counters[name] += 1
    fault = server.faults.take(name)
    if fault is not None:
        if fault.kind == "delay":
            time.sleep(float(fault.params.get("delay_ms", 100)) / 1000)
        answer = fault_response(fault)
        if answer is not None:
            return answer
    try:
        return handle(server, principal, request, base_url,
                      lambda segment: _mailbox(server, principal, segment))
    except GraphError as exc:
        return error_response(exc)
    except Exception as exc:
        server.internal_errors.append({"operation": name, "error": repr(exc),
                                       "traceback": traceback.format_exc()})
        return error_response(GraphError(500, "InternalServerError", f"ewsim bug: {exc!r}"))


def dispatch(server: Any, principal: Principal, request: GraphRequest,
             base_url: str) -> GraphResponse:
    state = server.graph
    try:
        if request.path.rstrip("/") == "/$batch":
            from .batch import handle_batch
            with state.lock:
                state.counters["batch"] += 1
            return handle_batch(server, principal, request, base_url)
        if SUBSCRIPTIONS_PATH.match(request.path):
            return _subscriptions(server, principal, request, base_url)
        found = USER_PATH.match(request.path)
        if found is None:
            segment = request.path.strip("/").split("/")[0]
            raise GraphError(400, "BadRequest",
                             f"Resource not found for the segment '{segment}'.")
        mailbox = _mailbox(server, principal, found.group(1))
        chosen, params = _match(request.method, found.group(2) or "/")
    except GraphError as exc:
        return error_response(exc)
    with state.lock:
        state.counters[chosen.name] += 1
    try:
        state.enter(mailbox)
    except ConcurrencyExceeded:
        error = GraphError(429, "ApplicationThrottled", None, {"Retry-After": "1"})
        return error_response(error)
    try:
        fault = server.faults.take(chosen.name)
        if fault is not None:
            if fault.kind == "delay":
                time.sleep(float(fault.params.get("delay_ms", 100)) / 1000)
            elif fault.kind == "hold":
                state.hold(float(fault.params.get("timeout_s", 30)))
            answer = fault_response(fault)
            if answer is not None:
                return answer
        if server.latency_ms:
            time.sleep(server.latency_ms / 1000)
        ctx = GraphContext(server.store, server, principal, mailbox, request, base_url,
                           found.group(1) or mailbox)
        try:
            with server.store.lock:
                return chosen.handler(ctx, **params)
        except GraphError as exc:
            return error_response(exc)
        except Exception as exc:
            server.internal_errors.append({"operation": f"graph {chosen.name}",
                                           "error": repr(exc),
                                           "traceback": traceback.format_exc()})
            return error_response(GraphError(500, "InternalServerError",
                                             f"ewsim bug: {exc!r}"))
    finally:
        state.leave(mailbox)
