"""Fitting a record to the lengths the other side keeps: values cut, never a refused write.

Pure, like the planner that uses it: a record (or its snapshot) and the limits in, the fitted
copy out. A limit counts UTF-16 code units, as Exchange (.NET) counts characters, so an emoji
counts twice and is never cut in half. A cut value loses its trailing spaces: Exchange strips
them, and a value read back must equal the value written or it would look like an edit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from engine.records import PostalAddress, Record

# Field name -> the longest value kept. A postal address field limits each of its parts; a
# series' changed occurrences ("exceptions") are fitted by the same limits.
Limits = Mapping[str, int]
NESTED = "exceptions"


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """`text` within `limit` UTF-16 code units, as it reads back from Exchange."""
    if len(text) <= limit and (text.isascii() or units(text) <= limit):
        return text
    return text.encode("utf-16-le")[:2 * limit].decode("utf-16-le", errors="ignore").rstrip()


def _fit_value(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return cut(value, limit)
    if isinstance(value, PostalAddress):
        return dataclasses.replace(value, **{f.name: cut(getattr(value, f.name), limit)
                                             for f in dataclasses.fields(value)})
    if isinstance(value, dict):   # a postal address in a snapshot
        return {k: cut(v, limit) if isinstance(v, str) else v for k, v in value.items()}
    return value


def fit_record(record: Record, limits: Limits) -> tuple[Record, frozenset[str]]:
    """The record as the other side can keep it, and the fields that had to be cut."""
    if not limits:
        return record, frozenset()
    changes: dict[str, Any] = {}
    for name, limit in limits.items():
        value = getattr(record, name, None)
        fitted = _fit_value(value, limit)
        if fitted != value:
            changes[name] = fitted
    nested = getattr(record, NESTED, None)
    if nested:
        fitted_nested = [fit_record(r, limits)[0] for r in nested]
        if fitted_nested != nested:
            changes[NESTED] = fitted_nested
    if not changes:
        return record, frozenset()
    return dataclasses.replace(record, **changes), frozenset(changes)


def fit_data(data: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """A snapshot (records.canonical) as it reads back once its record is fitted."""
    if not limits:
        return data
    out = {name: _fit_value(value, limits[name]) if name in limits else value
           for name, value in data.items()}
    if isinstance(out.get(NESTED), list):
        out[NESTED] = [fit_data(e, limits) if isinstance(e, dict) else e for e in out[NESTED]]
    return out
