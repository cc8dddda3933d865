"""Outlook's master category list as Exchange stores it: the XML stream of the calendar
folder's "CategoryList" configuration (MS-OXOCFG 2.2.5.2.2), which EWS hands out as the
configuration's XmlData.

    <categories xmlns="CategoryList.xsd" …>
      <category name="Hotline" color="0" guid="{…}" … />

Colours are preset numbers, -1 for none; Graph names the same presets "preset0"…"preset24"
and "none", which is what `Category.color` holds whichever protocol read it.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from engine.mailbox.base import Category

NAMESPACE = "CategoryList.xsd"
PRESETS = 25


class CategoryListUnreadable(ValueError):
    """The stream is not a category list this module can read."""


def preset(color: str | None) -> str:
    """Outlook's colour number ("7", "-1") as Graph names the preset ("preset7", "none")."""
    try:
        number = int(color or "-1")
    except ValueError:
        return "none"
    return f"preset{number}" if 0 <= number < PRESETS else "none"


def by_name(categories: list[Category]) -> list[Category]:
    return sorted(categories, key=lambda c: c.name.casefold())


def parse(data: bytes) -> list[Category]:
    """The categories of a CategoryList stream, sorted by name."""
    try:
        # What a server sends is not trusted: Outlook writes no DTD, so none is accepted (and
        # no entity expanded).
        root: Element = fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise CategoryListUnreadable(str(exc)) from exc
    if root.tag != f"{{{NAMESPACE}}}categories":
        raise CategoryListUnreadable("the document is not a category list")
    found: dict[str, Category] = {}
    for element in root.iter(f"{{{NAMESPACE}}}category"):
        name = (element.get("name") or "").strip()
        # Outlook keeps names unique without regard to case; a damaged list may not.
        if name and name.casefold() not in found:
            found[name.casefold()] = Category(name, preset(element.get("color")))
    return by_name(list(found.values()))
