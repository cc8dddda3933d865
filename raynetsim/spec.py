"""What the simulator reads from Raynet's specification (openapi.json beside this module):
the required attributes of each create, and the filter columns each list accepts, so both
follow the specification rather than a copy of it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).with_name("openapi.json")
_LIST_CONTROLS = {"offset", "limit", "sortColumn", "sortDirection", "fulltext", "view",
                  "dateFormat"}


@cache
def document() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def _create_schema(entity: str) -> dict[str, Any]:
    body = document()["paths"][f"/{entity}/"]["put"]["requestBody"]
    return body["content"]["application/json"]["schema"]


@cache
def required_on_create(entity: str) -> tuple[str, ...]:
    return tuple(_create_schema(entity).get("required", ()))


@cache
def filter_columns(entity: str) -> frozenset[str]:
    listing = document()["paths"][f"/{entity}/"].get("get", {})
    names = {p["name"] for p in listing.get("parameters", ()) if p.get("in") == "query"}
    # Every list filters on `id` and the last change, though not every list declares them.
    return frozenset(names - _LIST_CONTROLS | {"id", "rowInfo.lastModifiedAt"})


DETAIL_PATHS = {"person": "/person/{personId}/", "company": "/company/{companyId}/",
                "meeting": "/meeting/{meetingId}/", "event": "/event/{eventId}/",
                "email": "/email/{emailId}/"}


@cache
def detail_example(entity: str) -> dict[str, Any]:
    """The record in the specification's example of `GET /{entity}/{id}/`: the one source
    of a detail's shape, since the specification gives answers no schema."""
    path = DETAIL_PATHS.get(entity)
    if path is None:
        return {}
    answer = document()["paths"][path]["get"]["responses"]["200"]["content"]
    return dict(answer["application/json"]["example"]["data"])


@cache
def sort_columns(entity: str) -> frozenset[str]:
    listing = document()["paths"][f"/{entity}/"].get("get", {})
    for parameter in listing.get("parameters", ()):
        if parameter["name"] == "sortColumn":
            return frozenset(parameter["schema"].get("enum", ()))
    return frozenset({"id"})


@cache
def edit_answers_with_body(entity: str) -> bool:
    """Whether `POST /{entity}/{id}/` answers with a body (`{"success": true}`): the
    specification declares one for some entities (meeting) and none for others (person)."""
    path = DETAIL_PATHS.get(entity)
    operation = document()["paths"].get(path or "", {}).get("post", {})
    return bool(operation.get("responses", {}).get("200", {}).get("content"))
