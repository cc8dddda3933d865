"""Control plane for the Graph side: `/_control/graph/...` (JSON, on the EWS port).

Only what the EWS control plane cannot already do: the test-connection failures an
administrator can meet, delta and token expiry, concurrency statistics, held requests,
the invitations a Graph write would have sent.
"""

from __future__ import annotations

from typing import Any


class _Error(Exception):
    pass


def handle(server: Any, method: str, parts: list[str], data: dict[str, Any]) -> Any:
    from ..control import ControlError

    store = server.store
    state = server.graph
    route = "/".join(parts)
    if route == "stats":
        if method == "DELETE":
            state.clear_counters()
        return state.stats()
    if route == "settings" and method in ("POST", "PATCH"):
        if "mailbox_concurrency" in data:
            value = int(data["mailbox_concurrency"])
            if value < 1:
                raise ControlError(400, "mailbox_concurrency must be >= 1")
            with state.lock:
                state.limit = value
        return {"mailbox_concurrency": state.limit}
    if route == "expire-delta" and method == "POST":
        mailbox = str(data["mailbox"]).lower()
        with state.lock:
            state.generation[mailbox] += 1
        return {"mailbox": mailbox, "generation": state.generation[mailbox]}
    if route == "expire-tokens" and method == "POST":
        with store.lock:
            expired = list(store.tokens)
            store.tokens.clear()
        with state.lock:
            state.expired_tokens.update(expired)
        return {"expired": len(expired)}
    if route == "mailbox" and method in ("POST", "PATCH"):
        # {"mailbox": ..., "rest_enabled": false}: a mailbox without an Exchange Online
        # license (or on premises) answers 404 MailboxNotEnabledForRESTAPI.
        mailbox = str(data["mailbox"]).lower()
        with state.lock:
            if data.get("rest_enabled", True):
                state.unlicensed.discard(mailbox)
            else:
                state.unlicensed.add(mailbox)
        return {"mailbox": mailbox, "rest_enabled": mailbox not in state.unlicensed}
    if route == "app" and method in ("POST", "PATCH"):
        with store.lock:
            app = store.apps.get(str(data["client_id"]))
            if app is None:
                raise ControlError(404, "no such app")
            if "admin_consent" in data:
                app.admin_consent = bool(data["admin_consent"])
            if "certificate" in data:
                app.certificate_pem = data["certificate"]
            if "client_secret" in data:
                app.client_secret = str(data["client_secret"])
            return {"client_id": app.client_id, "admin_consent": app.admin_consent}
    if parts and parts[0] in ("subscriptions", "notifications"):
        from .notify_control import handle as notify_handle
        return notify_handle(server, method, parts, data)
    if route == "release" and method == "POST":
        state.release()
        return {"released": True}
    if route == "invitations":
        # What real Graph would have mailed (it has no SendToNone): recorded in the
        # shared sent log with protocol "graph".
        return [entry for entry in server.sent_log if entry.get("protocol") == "graph"]
    raise ControlError(404, f"unknown control endpoint {method} /_control/graph/{route}")
