"""pytest fixtures and a control-plane client.

`ewsim` (function scope) yields a `SimHandle` with `.url`, `.control` and `.reset()`
on a session-wide server. Schema validation is on; any invalid response or internal
simulator error fails the test that caused it at teardown.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from .server import EwsServer

DEFAULT_USER = "alice@example.com"
DEFAULT_PASSWORD = "alice-secret"


class ControlError(RuntimeError):
    pass


class ControlClient:
    """Tiny JSON client for /_control/ (works against an out-of-process ewsim too)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/") + "/_control"

    def call(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"
        body = json.dumps(data or {}).encode() if method != "GET" else None
        if method == "GET" and data:
            url += "?" + "&".join(f"{k}={v}" for k, v in data.items())
        req = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ControlError(f"{method} {path}: {exc.code} {exc.read().decode()}") from exc

    # convenience wrappers
    def reset(self) -> None:
        self.call("POST", "reset")

    def add_user(self, address: str, password: str, **kw: Any) -> Any:
        return self.call("POST", "users", {"address": address, "password": password, **kw})

    def add_app(self, client_id: str, client_secret: str, **kw: Any) -> Any:
        return self.call("POST", "apps", {"client_id": client_id, "client_secret": client_secret,
                                          **kw})

    def deliver(self, mailbox: str, folder: str = "inbox", mime: bytes | None = None,
                **fields: Any) -> Any:
        data: dict[str, Any] = {"mailbox": mailbox, "folder": folder, **fields}
        if mime is not None:
            data["mime"] = base64.b64encode(mime).decode()
        return self.call("POST", "deliver", data)

    def create_item(self, mailbox: str, folder: str | None = None, xml: str | None = None,
                    tag: str = "Message", **fields: Any) -> Any:
        return self.call("POST", "items", {"mailbox": mailbox, "folder": folder, "xml": xml,
                                           "tag": tag, "fields": fields})

    def update_item(self, item_id: str, xml: str | None = None, **fields: Any) -> Any:
        return self.call("PATCH", f"items/{item_id}", {"xml": xml, "fields": fields})

    def move_item(self, item_id: str, folder: str) -> Any:
        return self.call("PATCH", f"items/{item_id}", {"move_to": folder})

    def delete_item(self, item_id: str) -> Any:
        return self.call("DELETE", f"items/{item_id}")

    def get_item(self, item_id: str) -> Any:
        return self.call("GET", f"items/{item_id}")

    def set_categories(self, mailbox: str, categories: list[dict[str, Any]] | None) -> Any:
        """Replace `mailbox`'s master category list ({name, color: "preset7" or 7}); None
        removes it, as in a mailbox whose list Outlook never saved."""
        return self.call("PUT", "categories", {"mailbox": mailbox, "categories": categories})

    def categories(self, mailbox: str) -> list[dict[str, Any]] | None:
        return self.call("GET", "categories", {"mailbox": mailbox})["categories"]

    def fault(self, kind: str, operation: str = "*", count: int = 1, **params: Any) -> Any:
        return self.call("POST", "faults", {"kind": kind, "operation": operation,
                                            "count": count, **params})

    def clear_faults(self) -> Any:
        return self.call("DELETE", "faults")

    def counters(self) -> dict[str, int]:
        return self.call("GET", "counters")

    def reset_counters(self) -> Any:
        return self.call("DELETE", "counters")

    def ids_asked(self) -> dict[str, int]:
        """Ids asked per operation, across its requests (GetAttachment's attachment ids)."""
        return self.call("GET", "ids-asked")

    def sent(self) -> list[dict[str, Any]]:
        return self.call("GET", "sent")

    # --- Graph ---------------------------------------------------------------------------
    def graph_stats(self) -> dict[str, Any]:
        """Requests per Graph route, peak concurrency / throttled count per mailbox."""
        return self.call("GET", "graph/stats")

    def graph_settings(self, **values: Any) -> Any:
        """e.g. graph_settings(mailbox_concurrency=2)."""
        return self.call("POST", "graph/settings", values)

    def expire_delta(self, mailbox: str) -> Any:
        """Every Graph delta token of `mailbox` issued so far answers 410 from now on."""
        return self.call("POST", "graph/expire-delta", {"mailbox": mailbox})

    def expire_tokens(self) -> Any:
        """Every bearer token issued so far is expired (401 InvalidAuthenticationToken)."""
        return self.call("POST", "graph/expire-tokens")

    def set_mailbox(self, mailbox: str, rest_enabled: bool) -> Any:
        return self.call("POST", "graph/mailbox", {"mailbox": mailbox,
                                                   "rest_enabled": rest_enabled})

    def set_app(self, client_id: str, **values: Any) -> Any:
        """e.g. set_app("app-1", admin_consent=False) or certificate=PEM."""
        return self.call("POST", "graph/app", {"client_id": client_id, **values})

    def release_held(self) -> Any:
        """Let every Graph request parked by a `hold` fault go on."""
        return self.call("POST", "graph/release")

    def invitations(self) -> list[dict[str, Any]]:
        """Graph writes that real Graph would have mailed to attendees."""
        return self.call("GET", "graph/invitations")

    # Graph change notifications (ewsim/graph/notifier.py)
    def graph_subscriptions(self) -> list[dict[str, Any]]:
        return self.call("GET", "graph/subscriptions")

    def graph_lifecycle(self, subscription_id: str, event: str) -> Any:
        """reauthorizationRequired, subscriptionRemoved (also deletes it) or missed."""
        return self.call("POST", f"graph/subscriptions/{subscription_id}/lifecycle",
                         {"event": event})

    def expire_graph_subscription(self, subscription_id: str) -> Any:
        return self.call("POST", f"graph/subscriptions/{subscription_id}/expire")

    def graph_notifications(self) -> dict[str, Any]:
        """Counters (sent, dropped, failed_posts, lifecycle_sent…), settings, last POSTs."""
        return self.call("GET", "graph/notifications")

    def graph_notification_settings(self, **values: Any) -> Any:
        """batch_window_s, timeout_s, retry_delays [s, …], sweep_s."""
        return self.call("POST", "graph/notifications/settings", values)

    def fail_graph_deliveries(self, count: int = 1) -> Any:
        """The next `count` delivery attempts fail (-1: all until `count=0`)."""
        return self.call("POST", "graph/notifications/fail", {"count": count})

    def settings(self, **values: Any) -> Any:
        """e.g. settings(notification_minute_seconds=0.5); no arguments = read them."""
        return self.call("POST", "settings", values)

    def affinity(self) -> list[dict[str, Any]]:
        """Per notification request: anchor mailbox, X-PreferServerAffinity, the
        X-BackEndOverrideCookie sent (`cookie`) and handed out (`set_cookie`)."""
        return list(self.call("GET", "affinity")["requests"])


class SimHandle:
    def __init__(self, server: EwsServer) -> None:
        self.server = server
        self.url = server.url
        self.base_url = server.base_url
        self.graph_url = server.graph_url
        self.https_base_url = server.https_base_url     # TLS listener (MSAL needs https)
        self.tls_ca_file = server.tls_ca_file
        self.control = ControlClient(server.base_url)
        self.user = DEFAULT_USER
        self.password = DEFAULT_PASSWORD

    def reset(self) -> None:
        """Empty the store and create the default user alice@example.com."""
        self.server.reset()
        self.server.store.add_user(DEFAULT_USER, DEFAULT_PASSWORD, "Alice Example",
                                   domain="EXAMPLE", account="alice")

    def problems(self) -> list[dict[str, Any]]:
        return self.server.validation_errors + self.server.internal_errors


def _close_exchangelib() -> None:
    try:   # Protocol objects are cached per endpoint+credentials (notes §0)
        from exchangelib.protocol import close_connections
    except ImportError:  # pragma: no cover
        return
    close_connections()


@pytest.fixture(scope="session")
def ewsim_server() -> Iterator[EwsServer]:
    server = EwsServer(port=0, validate=True, tls=True).start()
    yield server
    server.stop()


@pytest.fixture
def ewsim(ewsim_server: EwsServer) -> Iterator[SimHandle]:
    handle = SimHandle(ewsim_server)
    handle.reset()
    ewsim_server.validate = True
    _close_exchangelib()
    yield handle
    _close_exchangelib()
    problems = handle.problems()
    ewsim_server.faults.clear()
    assert not problems, "ewsim produced invalid responses or failed internally:\n" + \
        json.dumps(problems, indent=1, default=str)[:8000]
