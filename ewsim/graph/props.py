"""Small converters between Graph JSON values and the store's EWS property elements."""

from __future__ import annotations

from typing import Any

from lxml import etree

from ..ns import T, sub, t_el, tq
from ..store import Item
from ..timeutil import fmt_dt, parse_dt
from .errors import bad_request


def text(item: Item, name: str) -> str | None:
    return item.text(name)


def set_text(item: Item, name: str, value: Any) -> None:
    """A scalar property; None (JSON null) clears it, as a PATCH with null does."""
    if value is None or value == "":
        item.props.pop(name, None)
        return
    if not isinstance(value, str | int | float | bool):
        raise bad_request(f"Invalid value for {name}.", "ErrorInvalidProperty")
    item.props[name] = t_el(name, str(value).lower() if isinstance(value, bool) else str(value))


def strings(item: Item, name: str) -> list[str]:
    el = item.props.get(name)
    return [s.text or "" for s in el.iter(tq("String"))] if el is not None else []


def set_strings(item: Item, name: str, values: Any) -> None:
    if values is None or values == []:
        item.props.pop(name, None)
        return
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise bad_request(f"{name} must be an array of strings.", "ErrorInvalidProperty")
    el = t_el(name)
    for value in values:
        sub(el, T, "String", value)
    item.props[name] = el


def entries(item: Item, name: str) -> dict[str, etree._Element]:
    el = item.props.get(name)
    return {e.get("Key", ""): e for e in el} if el is not None else {}


def replace_entries(item: Item, name: str, keys: list[str],
                    new: list[tuple[str, etree._Element]]) -> None:
    """Replace the entries `keys` of the indexed property `name` by `new` (key, entry)."""
    current = item.props.get(name)
    if current is None:
        current = t_el(name)
    for entry in list(current):
        if entry.get("Key") in keys:
            current.remove(entry)
    for key, entry in new:
        entry.set("Key", key)
        current.append(entry)
    if len(current):
        item.props[name] = current
    else:
        item.props.pop(name, None)


def body(item: Item) -> dict[str, str]:
    el = item.props.get("Body")
    if el is None:
        return {"contentType": "text", "content": ""}
    kind = "html" if (el.get("BodyType") or "Text").lower() == "html" else "text"
    return {"contentType": kind, "content": el.text or ""}


def set_body(item: Item, value: Any) -> None:
    if value is None:
        item.props.pop("Body", None)
        return
    if not isinstance(value, dict):
        raise bad_request("body must be an itemBody object.", "ErrorInvalidProperty")
    kind = "HTML" if str(value.get("contentType", "text")).lower() == "html" else "Text"
    item.props["Body"] = t_el("Body", str(value.get("content") or ""), BodyType=kind)


def offset(item: Item, name: str) -> str | None:
    value = parse_dt(item.text(name))
    return fmt_dt(value) if value else None


def set_offset(item: Item, name: str, value: Any) -> None:
    if value is None:
        item.props.pop(name, None)
        return
    parsed = parse_dt(str(value))
    if parsed is None:
        raise bad_request(f"Cannot convert the literal '{value}' to the expected type "
                          f"'Edm.DateTimeOffset'.", "ErrorInvalidProperty")
    item.props[name] = t_el(name, fmt_dt(parsed))


def email_address(el: etree._Element | None) -> dict[str, str] | None:
    """An EWS Mailbox element as Graph's emailAddress {name, address}."""
    if el is None:
        return None
    return {"name": el.findtext(tq("Name")) or el.findtext(tq("EmailAddress")) or "",
            "address": el.findtext(tq("EmailAddress")) or ""}


def recipients(item: Item, name: str) -> list[dict[str, Any]]:
    el = item.props.get(name)
    if el is None:
        return []
    return [{"emailAddress": email_address(m)} for m in el.iter(tq("Mailbox"))]


def mailbox_element(tag: str, spec: Any) -> etree._Element:
    """Graph {"emailAddress": {name, address}} -> EWS <t:Mailbox>."""
    address = spec.get("emailAddress") if isinstance(spec, dict) else None
    if not isinstance(address, dict) or not address.get("address"):
        raise bad_request("A recipient needs emailAddress.address.", "ErrorInvalidProperty")
    mbx = etree.Element(tq(tag))
    if address.get("name"):
        sub(mbx, T, "Name", str(address["name"]))
    sub(mbx, T, "EmailAddress", str(address["address"]))
    sub(mbx, T, "RoutingType", "SMTP")
    return mbx
