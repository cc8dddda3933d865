"""FindFolder restrictions: the search expressions of restrictions.py, read on folders.

Exchange filters the folders FindFolder finds by its Restriction, on folder properties
only (FindFolderType.Restriction, "should only use the folder properties"). ewsim knows
the properties it stores or counts: DisplayName, FolderClass, TotalCount, ChildFolderCount,
UnreadCount, and PidTagAttributeHidden when set (foldertree.py); any other path is absent
(so `Exists` is false and comparisons fail), as an unset property is on Exchange.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from .foldertree import HIDDEN_KEY
from .itemxml import ext_key
from .ns import local, parse_bool
from .restrictions import evaluate
from .store import Folder

COUNTS = ("TotalCount", "ChildFolderCount", "UnreadCount")


def _raw(folder: Folder, path: etree._Element) -> str | None:
    if local(path) == "ExtendedFieldURI":
        return "true" if ext_key(path) == HIDDEN_KEY and folder.hidden else None
    if local(path) != "FieldURI":
        return None
    name = path.get("FieldURI", "").partition(":")[2]
    if name == "DisplayName":
        return folder.display_name
    if name == "FolderClass":
        return folder.folder_class
    if name == "TotalCount":
        return str(len(folder.items))
    if name == "ChildFolderCount":
        return str(len(folder.children))
    if name == "UnreadCount":
        return str(folder.unread)
    return None


def _typed(path: etree._Element, value: str | None) -> Any:
    if value is None:
        return None
    if path.get("PropertyType") == "Boolean":
        return parse_bool(value)
    if path.get("FieldURI", "").partition(":")[2] in COUNTS:
        try:
            return int(value)
        except ValueError:
            return value
    return value


def folder_matches(folder: Folder, restriction: etree._Element) -> bool:
    return evaluate(restriction, lambda path: _raw(folder, path), _typed)
