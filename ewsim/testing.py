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

    def fault(self, kind: str, operation: str = "*", count: int = 1, **params: Any) -> Any:
        return self.call("POST", "faults", {"kind": kind, "operation": operation,
                                            "count": count, **params})

    def clear_faults(self) -> Any:
        return self.call("DELETE", "faults")

    def counters(self) -> dict[str, int]:
        return self.call("GET", "counters")

    def reset_counters(self) -> Any:
        return self.call("DELETE", "counters")

    def sent(self) -> list[dict[str, Any]]:
        return self.call("GET", "sent")

    def settings(self, **values: Any) -> Any:
        """e.g. settings(notification_minute_seconds=0.5); no arguments = read them."""
        return self.call("POST", "settings", values)


class SimHandle:
    def __init__(self, server: EwsServer) -> None:
        self.server = server
        self.url = server.url
        self.base_url = server.base_url
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
    server = EwsServer(port=0, validate=True).start()
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
