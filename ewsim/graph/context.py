"""One Graph request as the handlers see it: who calls, whose mailbox, preferences, query."""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from ..store import Item, Principal, Store
from .errors import GraphError, bad_request

PREFER_PART = re.compile(r'\s*([\w.\-]+)\s*(?:=\s*("[^"]*"|[^,;]*))?')


def parse_prefer(values: list[str]) -> dict[str, str]:
    """`Prefer: IdType="ImmutableId", odata.maxpagesize=50` -> {"idtype": "ImmutableId", ...}.

    Several Prefer headers, or one with comma-separated preferences, are both legal.
    """
    out: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            match = PREFER_PART.match(part)
            if match and match.group(1):
                out[match.group(1).lower()] = (match.group(2) or "").strip().strip('"')
    return out


ID_PREFIXES = ("AAMk", "AAkALg")     # what ewsim's ids (ids.py) start with


def check_id(graph_id: str) -> None:
    """Exchange tells a malformed id (400) from a well-formed unknown one (404)."""
    if not graph_id.startswith(ID_PREFIXES) or len(graph_id) < 12:
        raise GraphError(400, "ErrorInvalidIdMalformed")


@dataclass
class GraphRequest:
    method: str
    path: str                       # below /graph/v1.0, e.g. "/users/a@x/contacts"
    query: dict[str, str]
    headers: dict[str, str]         # lower-cased names
    body: bytes = b""
    prefer: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, method: str, target: str, headers: dict[str, str], body: bytes,
              prefer_values: list[str] | None = None) -> GraphRequest:
        split = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        lower = {k.lower(): v for k, v in headers.items()}
        prefer = parse_prefer(prefer_values if prefer_values is not None
                              else ([lower["prefer"]] if "prefer" in lower else []))
        return cls(method.upper(), urllib.parse.unquote(split.path), query, lower, body, prefer)

    def json(self) -> dict[str, Any]:
        if not self.body:
            raise bad_request("Empty Payload. JSON content expected.")
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"Unable to read JSON request payload: {exc}") from exc
        if not isinstance(data, dict):
            raise bad_request("Invalid request: a JSON object was expected.")
        return data


@dataclass
class GraphResponse:
    status: int
    body: Any = None                # JSON-able, bytes, or None (no body)
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; odata.metadata=minimal; odata.streaming=true; " \
                        "IEEE754Compatible=false; charset=utf-8"


@dataclass
class GraphContext:
    store: Store
    server: Any                     # the EwsServer
    principal: Principal
    mailbox: str                    # the address of /users/{id}
    request: GraphRequest
    base_url: str                   # "http://127.0.0.1:port/graph/v1.0"
    user_segment: str = ""          # as the client wrote it, echoed in links

    @property
    def immutable(self) -> bool:
        return self.request.prefer.get("idtype", "").lower() == "immutableid"

    @property
    def timezone(self) -> str:
        return self.request.prefer.get("outlook.timezone") or "UTC"

    def page_size(self, default: int, maximum: int = 1000) -> int:
        raw = self.request.prefer.get("odata.maxpagesize") or self.request.query.get("$top")
        if not raw:
            return default
        try:
            size = int(raw)
        except ValueError as exc:
            raise bad_request(f"Invalid page size {raw!r}.") from exc
        return max(1, min(size, maximum))

    def item_id(self, item: Item) -> str:
        """Immutable ids survive moves; default ids are the store's (they change on move)."""
        return item.immutable_id if self.immutable else item.id

    def removed_id(self, store_id: str) -> str:
        if self.immutable:
            return self.store.immutable_of.get(store_id, store_id)
        return store_id

    def find_item(self, graph_id: str) -> Item:
        check_id(graph_id)
        item = self.store.items.get(graph_id) or self.store.by_immutable.get(graph_id)
        if item is None or item.mailbox != self.mailbox:
            raise GraphError(404, "ErrorItemNotFound")
        return item

    def link(self, path: str, **params: str) -> str:
        query = urllib.parse.urlencode(params, safe="$")
        return f"{self.base_url}/users/{urllib.parse.quote(self.user_segment or self.mailbox)}" \
               f"/{path}" + (f"?{query}" if query else "")

    def context_url(self, fragment: str) -> str:
        return f"{self.base_url}/$metadata#{fragment}"
