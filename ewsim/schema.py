"""Everything derived from Microsoft's EWS schema.

Two jobs: (1) validate response payloads against messages.xsd, and (2) tell the
serializer, for each item/folder type, the schema order of child elements and
which children are booleans or datetimes, so stored client XML can be re-emitted
in a schema-valid order with canonical values.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

XS = "http://www.w3.org/2001/XMLSchema"
_lock = threading.Lock()
_schema: etree.XMLSchema | None = None
_types: dict[str, TypeInfo] | None = None


def schema_dir() -> Path:
    env = os.environ.get("EWS_SCHEMA_DIR")
    if env:
        return Path(env)
    # Microsoft's EWS schema as Exchange Online publishes it (a real server serves the same
    # files at /EWS/messages.xsd); kept in the package so the simulator runs offline.
    return Path(__file__).resolve().parent / "xsd"


def messages_schema() -> etree.XMLSchema:
    """Load messages.xsd once per process (a couple of seconds)."""
    global _schema
    with _lock:
        if _schema is None:
            _schema = etree.XMLSchema(etree.parse(str(schema_dir() / "messages.xsd")))
        return _schema


def validate_payload(payload: etree._Element) -> list[str]:
    """Validate a SOAP body payload (e.g. m:GetItemResponse); return error strings."""
    schema = messages_schema()
    doc = etree.ElementTree(etree.fromstring(etree.tostring(payload)))
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


@dataclass
class TypeInfo:
    order: dict[str, int] = field(default_factory=dict)
    booleans: set[str] = field(default_factory=set)
    datetimes: set[str] = field(default_factory=set)


def _collect(ctypes: dict[str, etree._Element], groups: dict[str, etree._Element],
             node: etree._Element, info: TypeInfo) -> None:
    for child in node:
        if not isinstance(child.tag, str):
            continue
        tag = etree.QName(child).localname
        if tag == "element" and child.get("name"):
            name = child.get("name")
            if name not in info.order:
                info.order[name] = len(info.order)
            typ = child.get("type", "")
            if typ == "xs:boolean":
                info.booleans.add(name)
            elif typ == "xs:dateTime":
                info.datetimes.add(name)
        elif tag in ("sequence", "choice", "all"):
            _collect(ctypes, groups, child, info)
        elif tag == "group" and child.get("ref"):
            grp = groups.get(child.get("ref").split(":")[-1])
            if grp is not None:
                _collect(ctypes, groups, grp, info)
        elif tag in ("complexContent", "extension"):
            base = child.get("base")
            if base and base.split(":")[-1] in ctypes:
                _collect(ctypes, groups, ctypes[base.split(":")[-1]], info)
            _collect(ctypes, groups, child, info)


def type_info(type_name: str) -> TypeInfo:
    global _types
    with _lock:
        if _types is None:
            tree = etree.parse(str(schema_dir() / "types.xsd"))
            root = tree.getroot()
            ctypes = {c.get("name"): c for c in root.iter(f"{{{XS}}}complexType") if c.get("name")}
            groups = {g.get("name"): g for g in root.iter(f"{{{XS}}}group") if g.get("name")}
            _types = {}
            for name, node in ctypes.items():
                info = TypeInfo()
                _collect(ctypes, groups, node, info)
                _types[name] = info
        return _types.get(type_name, TypeInfo())


# Element tag -> schema complexType used for ordering.
ITEM_TYPES = {
    "Item": "ItemType",
    "Message": "MessageType",
    "CalendarItem": "CalendarItemType",
    "Contact": "ContactItemType",
    "DistributionList": "DistributionListType",
    "Task": "TaskType",
    "PostItem": "PostItemType",
    "MeetingRequest": "MeetingRequestMessageType",
}
FOLDER_TYPES = {
    "Folder": "FolderType",
    "CalendarFolder": "CalendarFolderType",
    "ContactsFolder": "ContactsFolderType",
    "TasksFolder": "TasksFolderType",
    "SearchFolder": "SearchFolderType",
}
