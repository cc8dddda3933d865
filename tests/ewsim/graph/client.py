"""A plain-urllib Graph client for the simulator tests: no SDK between test and server."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ewsim.testing import SimHandle

STAMP = "String {6e3b5f1a-4c8e-4f6b-9a53-2d0b8c1e7f10} Name CrmId"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    @property
    def code(self) -> str | None:
        data = self.json
        return data["error"]["code"] if isinstance(data, dict) and "error" in data else None


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None, context: Any = None) -> Answer:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    all_headers = {"Content-Type": "application/json"} if body is not None else {}
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as resp:
            return Answer(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers.items()), exc.read())


def token(sim: SimHandle, client_id: str = "app-1", secret: str = "app-secret",
          tenant: str = "tenant-1") -> Answer:
    form = urllib.parse.urlencode({"client_id": client_id, "client_secret": secret,
                                   "grant_type": "client_credentials",
                                   "scope": "https://graph.microsoft.com/.default"}).encode()
    return call("POST", f"{sim.base_url}/{tenant}/oauth2/v2.0/token", raw=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"})


@dataclass
class Graph:
    """Calls below /graph/v1.0 with an app-only bearer token and default preferences."""
    sim: SimHandle
    access_token: str
    mailbox: str = "alice@example.com"
    prefer: list[str] = field(default_factory=lambda: ['IdType="ImmutableId"'])

    @classmethod
    def connect(cls, sim: SimHandle, **kw: Any) -> Graph:
        sim.control.add_app("app-1", "app-secret", tenant="tenant-1")
        answer = token(sim)
        assert answer.status == 200, answer.raw
        return cls(sim, answer.json["access_token"], **kw)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.access_token}"}
        if self.prefer:
            out["Prefer"] = ", ".join(self.prefer)
        out.update(extra or {})
        return out

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        if path.startswith("/"):
            return f"{self.sim.graph_url}{path}"
        return f"{self.sim.graph_url}/users/{self.mailbox}/{path}"

    def get(self, path: str, **kw: Any) -> Answer:
        return call("GET", self.url(path), headers=self.headers(kw.pop("headers", None)), **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return call("POST", self.url(path), body, headers=self.headers(kw.pop("headers", None)),
                    **kw)

    def patch(self, path: str, body: Any, **kw: Any) -> Answer:
        return call("PATCH", self.url(path), body,
                    headers=self.headers(kw.pop("headers", None)), **kw)

    def put(self, path: str, raw: bytes, content_type: str) -> Answer:
        return call("PUT", self.url(path), raw=raw,
                    headers=self.headers({"Content-Type": content_type}))

    def delete(self, path: str, **kw: Any) -> Answer:
        return call("DELETE", self.url(path), headers=self.headers(kw.pop("headers", None)))

    def delta_round(self, path: str, page_size: int = 2) -> tuple[list[dict[str, Any]], str]:
        """Follow nextLinks to the deltaLink; return (all values, deltaLink)."""
        values: list[dict[str, Any]] = []
        url = path
        while True:
            answer = self.get(url, headers={"Prefer": ", ".join(
                [*self.prefer, f"odata.maxpagesize={page_size}"])})
            assert answer.status == 200, answer.raw
            page = answer.json
            assert len(page["value"]) <= page_size
            values.extend(page["value"])
            assert not ("@odata.nextLink" in page and "@odata.deltaLink" in page)
            if "@odata.deltaLink" in page:
                return values, page["@odata.deltaLink"]
            url = page["@odata.nextLink"]


def quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")
