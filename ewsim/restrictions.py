"""Evaluate FindItem restrictions and sort orders against stored items (and, through
`evaluate`, FindFolder restrictions against folders: folder_restrictions.py).

Only the shapes exchangelib generates (notes §3.4 FindItem): IsEqualTo/IsNotEqualTo/
comparisons on FieldURI, IndexedFieldURI and ExtendedFieldURI, Contains, Exists,
And/Or/Not. Booleans arrive as 1/0 and datetimes as UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from lxml import etree

from . import schema
from .itemxml import computed, ext_value, field_element
from .ns import local, parse_bool, tq
from .store import Item, Store
from .timeutil import parse_dt

Getter = Callable[[Item], Any]
COMPARE = {
    "IsEqualTo": lambda a, b: a == b,
    "IsNotEqualTo": lambda a, b: a != b,
    "IsGreaterThan": lambda a, b: a > b,
    "IsGreaterThanOrEqualTo": lambda a, b: a >= b,
    "IsLessThan": lambda a, b: a < b,
    "IsLessThanOrEqualTo": lambda a, b: a <= b,
}


def _raw(store: Store, item: Item, path: etree._Element) -> str | None:
    kind = local(path)
    if kind == "ExtendedFieldURI":
        prop = ext_value(item, path)
        return prop.findtext(tq("Value")) if prop is not None else None
    name = field_element(path.get("FieldURI", ""))
    el = item.props.get(name)
    if kind == "IndexedFieldURI":
        if el is None:
            return None
        entry = next((e for e in el if e.get("Key") == path.get("FieldIndex")), None)
        if entry is None:
            return None
        parts = path.get("FieldURI", "").split(":")
        return entry.findtext(tq(parts[2])) if len(parts) == 3 else entry.text
    if el is None:
        if name == "DateTimeReceived":
            return item.received.isoformat()
        if name in ("DateTimeCreated",):
            return item.created.isoformat()
        if name == "LastModifiedTime":
            return item.modified.isoformat()
        el = computed(store, item).get(name)
    if el is None:
        return None
    if name == "Categories":
        return "\n".join(s.text or "" for s in el)
    return el.text


def _typed(item: Item, path: etree._Element, value: str | None) -> Any:
    if value is None:
        return None
    name = field_element(path.get("FieldURI", ""))
    info = schema.type_info(schema.ITEM_TYPES.get(item.tag, "ItemType"))
    ptype = path.get("PropertyType")
    if name in info.booleans or ptype == "Boolean":
        return parse_bool(value)
    if name in info.datetimes or ptype == "SystemTime":
        return parse_dt(value)
    if ptype in ("Integer", "Long", "Short") or name in ("Size", "ReminderMinutesBeforeStart"):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def matches(store: Store, item: Item, node: etree._Element) -> bool:
    return evaluate(node, lambda path: _raw(store, item, path),
                    lambda path, value: _typed(item, path, value))


def evaluate(node: etree._Element, raw: Callable[[etree._Element], str | None],
             typed: Callable[[etree._Element, str | None], Any]) -> bool:
    """Evaluate a restriction against one object: `raw` reads a property path's text,
    `typed` turns such a text into a comparable value (FindItem's items, FindFolder's
    folders)."""
    kind = local(node)
    children = [c for c in node if isinstance(c.tag, str)]
    if kind == "Restriction":
        return all(evaluate(c, raw, typed) for c in children)
    if kind == "And":
        return all(evaluate(c, raw, typed) for c in children)
    if kind == "Or":
        return any(evaluate(c, raw, typed) for c in children)
    if kind == "Not":
        return not evaluate(children[0], raw, typed)
    if kind == "Exists":
        return raw(children[0]) is not None
    if kind == "Contains":
        value = raw(children[0])
        const = children[1].get("Value", "")
        if value is None:
            return False
        if "IgnoreCase" in node.get("ContainmentComparison", "Exact"):
            value, const = value.lower(), const.lower()
        mode = node.get("ContainmentMode", "Substring")
        if mode == "FullString":
            return value == const
        if mode == "Prefixed":
            return value.startswith(const)
        if mode == "PrefixOnWords":
            return any(w.startswith(const) for w in value.split())
        return const in value
    if kind in COMPARE:
        path = children[0]
        left = typed(path, raw(path))
        const_el = children[1][0] if len(children[1]) else children[1]
        right = typed(path, const_el.get("Value"))
        if left is None or right is None:
            return kind == "IsNotEqualTo" and left != right
        try:
            return bool(COMPARE[kind](left, right))
        except TypeError:
            return False
    return True


def sort_key(store: Store, order: etree._Element) -> list[tuple[Getter, bool]]:
    keys: list[tuple[Getter, bool]] = []
    for fo in order.findall(tq("FieldOrder")):
        path = fo[0]

        def getter(item: Item, path: etree._Element = path) -> Any:
            value = _typed(item, path, _raw(store, item, path))
            if isinstance(value, dt.datetime):
                return (1, value.timestamp())
            return (0, "") if value is None else (1, value)
        keys.append((getter, fo.get("Order") == "Descending"))
    return keys


def sort_items(store: Store, items: list[Item], order: etree._Element | None) -> list[Item]:
    if order is None:
        return items
    for getter, descending in reversed(sort_key(store, order)):
        items.sort(key=getter, reverse=descending)
    return items
