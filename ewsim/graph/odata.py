"""OData query options as Graph serves them: $select, $expand (with nested options), $top,
and the projection and annotations (`@odata.etag`, `@odata.type`) of answers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..timeutil import UTC

EXPAND_PART = re.compile(r"^\s*([\w/.]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside parentheses and quotes: "a($select=x,y),b" -> ["a(...)", "b"]."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_select(text: str | None) -> set[str] | None:
    if not text:
        return None
    return {name.strip().lower() for name in text.split(",") if name.strip()}


def parse_expand(text: str | None) -> dict[str, dict[str, str]]:
    """"attachments($select=id,name),singleValueExtendedProperties($filter=id eq 'x')" ->
    {"attachments": {"$select": "id,name"}, "singlevalueextendedproperties": {...}}."""
    out: dict[str, dict[str, str]] = {}
    for part in split_top_level(text or ""):
        match = EXPAND_PART.match(part)
        if match is None:
            continue
        options: dict[str, str] = {}
        for option in split_top_level(match.group(2) or "", ";"):
            key, _, value = option.partition("=")
            options[key.strip().lower()] = value.strip()
        out[match.group(1).lower()] = options
    return out


def project(data: dict[str, Any], select: set[str] | None,
            always: tuple[str, ...] = ("id", "@odata.etag", "@odata.type",
                                       "@removed")) -> dict[str, Any]:
    """Keep the selected properties (case-insensitive, as Graph matches them) and the
    annotations Graph always sends."""
    if select is None:
        return data
    return {k: v for k, v in data.items() if k.lower() in select or k in always}


def etag(changekey: str) -> str:
    return f'W/"{changekey}"'


def fmt_offset(value: dt.datetime | None) -> str | None:
    """DateTimeOffset as Graph writes it: "2025-01-06T08:00:00Z"."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
