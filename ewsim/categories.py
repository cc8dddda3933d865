"""The mailbox's master category list, as Outlook keeps it and both protocols serve it.

Exchange stores the list as an XML stream in the calendar folder's "CategoryList" user
configuration (MS-OXOCFG 2.2.5.2.2: `<categories xmlns="CategoryList.xsd"><category name=…
color=… …/>`); EWS reads it with GetUserConfiguration, Graph serves the same list as
`/outlook/masterCategories`. Colours are Outlook's 25 presets: -1 (none) or 0–24 in the XML,
"none" or "preset0"–"preset24" in Graph.

A new mailbox has the six colour categories a new Exchange Online mailbox has; the control
plane (`/_control/categories`) replaces a mailbox's list, or removes it (a mailbox whose
list Outlook never saved: GetUserConfiguration answers ErrorItemNotFound, Graph an empty
list).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from . import ids

NAMESPACE = "CategoryList.xsd"
CONFIGURATION_NAME = "CategoryList"
NO_COLOR = -1
PRESETS = 25
# What Outlook writes for a time a category was never used (FILETIME zero).
NEVER = "1601-01-01T00:00:00.000"
DEFAULTS = (("Red category", 0), ("Orange category", 1), ("Yellow category", 3),
            ("Green category", 4), ("Blue category", 7), ("Purple category", 8))


@dataclass
class MasterCategory:
    name: str
    color: int = NO_COLOR                        # -1, or a preset 0–24
    guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Outlook's own colour categories are renamed by the user on first use.
    rename_on_first_use: bool = False


@dataclass
class CategoryList:
    """The "CategoryList" configuration item: its identity and the categories it holds."""

    categories: list[MasterCategory]
    id: str = field(default_factory=ids.item_id)
    changekey: str = field(default_factory=ids.change_key)


def default_list() -> CategoryList:
    return CategoryList([MasterCategory(name, color, rename_on_first_use=True)
                         for name, color in DEFAULTS])


def color_number(value: Any) -> int:
    """A colour given as Graph names it ("preset7", "none"), or as the XML does (7, -1)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none"):
            return NO_COLOR
        number = int(text.removeprefix("preset"))
    else:
        number = int(value)
    if not NO_COLOR <= number < PRESETS:
        raise ValueError(f"colour {value!r} is not a preset 0–{PRESETS - 1} or none")
    return number


def graph_color(number: int) -> str:
    return "none" if number == NO_COLOR else f"preset{number}"


def xml_data(category_list: CategoryList) -> bytes:
    """The XML stream Outlook stores (the configuration's XmlData, before base64)."""
    default = next((c.name for c in category_list.categories), "")
    root = etree.Element(f"{{{NAMESPACE}}}categories", nsmap={None: NAMESPACE},
                         default=default, lastSavedSession="0", lastSavedTime=NEVER)
    for category in category_list.categories:
        etree.SubElement(root, f"{{{NAMESPACE}}}category", {
            "name": category.name, "color": str(category.color), "keyboardShortcut": "0",
            "usageCount": "0", "lastTimeUsedNotes": NEVER, "lastTimeUsedJournal": NEVER,
            "lastTimeUsedContacts": NEVER, "lastTimeUsedTasks": NEVER,
            "lastTimeUsedCalendar": NEVER, "lastTimeUsedMail": NEVER, "lastTimeUsed": NEVER,
            "lastSessionUsed": "0", "guid": "{" + category.guid.upper() + "}",
            "renameOnFirstUse": "1" if category.rename_on_first_use else "0"})
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def graph_json(category: MasterCategory) -> dict[str, Any]:
    return {"id": category.guid, "displayName": category.name,
            "color": graph_color(category.color)}


def set_categories(mailbox: Any, entries: list[dict[str, Any]] | None) -> CategoryList | None:
    """Replace `mailbox`'s list with `entries` ({name, color}); None removes the list."""
    if entries is None:
        mailbox.category_list = None
        return None
    categories: list[MasterCategory] = []
    seen: set[str] = set()
    for entry in entries:
        name = str(entry["name"]).strip()
        if not name or name.casefold() in seen:
            # Outlook keeps names unique without regard to case.
            raise ValueError(f"category name {name!r} is empty or given twice")
        seen.add(name.casefold())
        categories.append(MasterCategory(name, color_number(entry.get("color", NO_COLOR))))
    if mailbox.category_list is None:
        mailbox.category_list = CategoryList(categories)
    else:
        mailbox.category_list.categories = categories
        mailbox.category_list.changekey = ids.change_key()
    return mailbox.category_list


def summary(category_list: CategoryList | None) -> list[dict[str, Any]] | None:
    """The control plane's view of a list: names and Graph colour names, in stored order."""
    if category_list is None:
        return None
    return [{"name": c.name, "color": graph_color(c.color)} for c in category_list.categories]
