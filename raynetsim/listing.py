"""`GET /{entity}/`: filters with the operator in brackets after the attribute
(`rowInfo.lastModifiedAt[GT]=…`, `id[IN]=1,2,3`; none means EQ), `fulltext`, `tags`,
sorting and paging (offset/limit, at most 1,000 a page), as info.description describes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from . import spec
from .dates import DateError, parse
from .store import Instance

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100     # Raynet's page when no limit is given
FILTER = re.compile(r"^(?P<column>[^\[\]]+)(?:\[(?P<op>[A-Z_]+)\])?$")
OPERATORS = {"EQ", "NE", "LT", "LE", "GT", "GE", "LIKE", "LIKE_NOCASE", "IN", "NOT_IN",
             "EQ_OR_NULL", "NE_OR_NULL"}


class BadListRequest(ValueError):
    pass


def _lookup(shown: dict[str, Any], column: str) -> Any:
    if column in shown:
        value: Any = shown[column]
    else:
        value = shown
        for part in column.replace("-", ".").split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict) and "id" in value:
        return value["id"]     # a reference filters by its id (`owner=2`)
    return value


def _coerce(raw: str, current: Any, instance: Instance) -> Any:
    if isinstance(current, datetime):
        try:
            return parse(raw, instance.zone)
        except DateError as exc:
            raise BadListRequest(str(exc)) from exc
    if isinstance(current, bool):
        return raw.lower() in ("true", "on", "yes", "1")
    if isinstance(current, int):
        try:
            return int(raw)
        except ValueError as exc:
            raise BadListRequest(f"Not a number: {raw!r}") from exc
    return raw


def _like(pattern: str, value: Any, nocase: bool) -> bool:
    if value is None:
        return False
    regex = "^" + ".*".join(re.escape(p) for p in pattern.split("%")) + "$"
    return re.match(regex, str(value), re.IGNORECASE if nocase else 0) is not None


def _matches(value: Any, op: str, raw: str, instance: Instance) -> bool:
    if op in ("IN", "NOT_IN"):
        found = any(_coerce(r, value, instance) == value for r in raw.split(","))
        return found if op == "IN" else not found
    if op in ("LIKE", "LIKE_NOCASE"):
        return _like(raw, value, op == "LIKE_NOCASE")
    if op in ("EQ_OR_NULL", "NE_OR_NULL"):
        return value is None or _matches(value, op[:2], raw, instance)
    expected = _coerce(raw, value, instance)
    if op == "EQ":
        return value == expected
    if op == "NE":
        return value != expected
    if value is None:
        return False
    return {"LT": value < expected, "LE": value <= expected,
            "GT": value > expected, "GE": value >= expected}[op]


def _filters(entity: str, query: dict[str, str]) -> list[tuple[str, str, str]]:
    allowed = spec.filter_columns(entity)
    found = []
    for key, raw in query.items():
        match = FILTER.match(key)
        if key in ("offset", "limit", "sortColumn", "sortDirection", "view", "dateFormat",
                   "fulltext", "tags") or match is None:
            continue
        column, op = match["column"], match["op"] or "EQ"
        if column not in allowed:
            raise BadListRequest(f"Unsupported filter column {column}")
        if op not in OPERATORS:
            raise BadListRequest(f"Unsupported filter operator {op}")
        found.append((column, op, raw))
    return found


def _int(query: dict[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError as exc:
        raise BadListRequest(f"{name} must be a number") from exc


def select(instance: Instance, entity: str, shown: list[dict[str, Any]],
           query: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    """The matching records' total and the requested page of them."""
    filters = _filters(entity, query)
    rows = [row for row in shown
            if all(_matches(_lookup(row, c), op, raw, instance) for c, op, raw in filters)]
    if query.get("fulltext"):
        needle = query["fulltext"].lower()
        rows = [row for row in rows if any(needle in str(v).lower() for v in row.values()
                                           if isinstance(v, str))]
    if query.get("tags"):
        wanted = set(query["tags"].split(","))
        rows = [row for row in rows if wanted & set(row.get("tags") or ())]
    column = query.get("sortColumn", "id")
    if column not in spec.sort_columns(entity) | {"id"}:
        raise BadListRequest(f"Unsupported sort column {column}")
    rows.sort(key=lambda row: (_lookup(row, column) is not None, _lookup(row, column) or 0),
              reverse=query.get("sortDirection", "ASC") == "DESC")
    offset = max(_int(query, "offset", 0), 0)
    limit = _int(query, "limit", DEFAULT_LIMIT)
    if not 0 < limit <= MAX_LIMIT:
        raise BadListRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return len(rows), rows[offset:offset + limit]
