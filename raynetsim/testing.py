"""pytest fixtures and a control-plane client.

`raynetsim` (function scope) yields a `RaynetHandle` on a session-wide server, reset for
each test, with the instance `acme` and its API user alice@example.com. At teardown every
request and answer of the test is validated against openapi.json, and an internal error of
the simulator fails the test too.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from .server import RaynetServer

DEFAULT_INSTANCE = "acme"
DEFAULT_USER = "alice@example.com"
DEFAULT_API_KEY = "alice-api-key"


class ControlError(RuntimeError):
    pass


class ControlClient:
    """Tiny JSON client for /_control/ (works against an out-of-process raynetsim too)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/") + "/_control"

    def call(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        body = json.dumps(data or {}).encode() if method != "GET" else None
        request = urllib.request.Request(f"{self.base_url}/{path}", data=body, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ControlError(f"{method} {path}: {exc.code} {exc.read().decode()}") from exc

    def reset(self) -> None:
        self.call("POST", "reset")

    def add_instance(self, name: str, users: list[dict[str, str]], **kw: Any) -> Any:
        return self.call("POST", "instances", {"name": name, "users": users, **kw})

    def add_record(self, instance: str, entity: str, fields: dict[str, Any], **kw: Any) -> int:
        return self.call("POST", "records", {"instance": instance, "entity": entity,
                                             "fields": fields, **kw})["id"]

    def fault(self, kind: str, path: str = ".*", count: int = 1, **params: Any) -> Any:
        return self.call("POST", "faults", {"kind": kind, "path": path, "count": count,
                                            **params})

    def clear_faults(self) -> Any:
        return self.call("DELETE", "faults")

    def advance_clock(self, seconds: float) -> Any:
        return self.call("POST", "clock", {"advance_seconds": seconds})

    def budget(self, instance: str, **values: Any) -> Any:
        """e.g. budget("acme", daily_limit=10, used=9); no values = read it."""
        return self.call("POST", "budget", {"instance": instance, **values})

    def counters(self) -> dict[str, int]:
        return self.call("GET", "counters")

    def concurrency(self, reset: bool = False) -> dict[str, int]:
        """API requests in flight now, and the most at once since the last reset (`reset`:
        start counting the most anew)."""
        return self.call("POST", "concurrency/reset") if reset else self.call(
            "GET", "concurrency")

    def requests(self) -> list[dict[str, Any]]:
        return self.call("GET", "requests")

    def flush_webhooks(self) -> Any:
        return self.call("POST", "webhooks/flush")

    def webhooks(self) -> Any:
        return self.call("GET", "webhooks")

    def settings(self, **values: Any) -> Any:
        return self.call("POST", "settings", values)


class RaynetHandle:
    def __init__(self, server: RaynetServer) -> None:
        self.server = server
        self.url = server.api_url
        self.control = ControlClient(server.base_url)
        self.instance = DEFAULT_INSTANCE
        self.user = DEFAULT_USER
        self.api_key = DEFAULT_API_KEY
        self.user_person_id = 0
        self._unchecked: list[range] = []

    @contextlib.contextmanager
    def invalid_on_purpose(self) -> Iterator[None]:
        """Requests sent inside are meant to break the specification (a test of how
        raynetsim refuses them): they are left out of the validation."""
        start = len(self.server.request_log)
        try:
            yield
        finally:
            self._unchecked.append(range(start, len(self.server.request_log)))

    def reset(self) -> None:
        self.server.reset()
        made = self.control.add_instance(self.instance, [
            {"email": self.user, "api_key": self.api_key, "full_name": "Alice Example"}])
        self.user_person_id = made["users"][0]["person_id"]

    def problems(self) -> list[dict[str, Any]]:
        from .validation import problems
        checked = [entry for index, entry in enumerate(self.server.request_log)
                   if not any(index in skipped for skipped in self._unchecked)]
        return problems(checked) + list(self.server.internal_errors)


@pytest.fixture(scope="session")
def raynetsim_server() -> Iterator[RaynetServer]:
    server = RaynetServer(port=0).start()
    yield server
    server.stop()


@pytest.fixture
def raynetsim(raynetsim_server: RaynetServer) -> Iterator[RaynetHandle]:
    handle = RaynetHandle(raynetsim_server)
    handle.reset()
    yield handle
    problems = handle.problems()
    raynetsim_server.faults.clear()
    if problems:
        pytest.fail("raynetsim traffic the specification refuses, or internal errors:\n"
                    + json.dumps(problems, indent=1, default=str)[:8000])
