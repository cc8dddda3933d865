"""singleValueExtendedProperties <-> the store's EWS ExtendedProperty elements.

Graph names a property `"String {guid} Name CrmId"`, `"Integer {guid} Id 0x8233"` or
`"String 0x007D"`; EWS names the same MAPI property with ExtendedFieldURI attributes.
Both protocols read and write one `Item.ext` entry, so a stamp written through Graph is
seen by exchangelib and the other way round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from ..itemxml import ext_key
from ..ns import t_el, tq
from ..store import Item
from .errors import GraphError, bad_request

GRAPH_ID = re.compile(
    r"^\s*(\w+)\s+(?:\{([0-9a-fA-F-]{36})\}\s+(Name|Id)\s+(.+?)|(0x[0-9a-fA-F]{1,4}))\s*$",
    re.IGNORECASE)
# EWS DistinguishedPropertySetId names and the GUIDs Graph uses for them.
DISTINGUISHED_SETS = {
    "00020329-0000-0000-c000-000000000046": "PublicStrings",
    "00062008-0000-0000-c000-000000000046": "Common",
    "00062004-0000-0000-c000-000000000046": "Address",
    "00062002-0000-0000-c000-000000000046": "Appointment",
    "00020386-0000-0000-c000-000000000046": "InternetHeaders",
    "6ed8da90-450b-101b-98da-00aa003f1305": "Meeting",
    "00062003-0000-0000-c000-000000000046": "Task",
}
ANY_FILTER = re.compile(
    r"^\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+'((?:[^']|'')*)'"
    r"\s+and\s+\1/value\s+eq\s+'((?:[^']|'')*)'\s*\)\s*$", re.IGNORECASE)
ID_FILTER = re.compile(r"\s*id\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)


@dataclass(frozen=True)
class PropertyName:
    graph_id: str                 # as the client wrote it (echoed back)
    ptype: str
    set_id: str | None = None     # lower-case GUID
    name: str | None = None
    prop_id: int | None = None
    tag: int | None = None

    @classmethod
    def parse(cls, graph_id: str) -> PropertyName:
        match = GRAPH_ID.match(graph_id or "")
        if match is None:
            raise bad_request(f"Invalid extended property id '{graph_id}'.",
                              "ErrorInvalidProperty")
        ptype, guid, kind, value, tag = match.groups()
        if tag:
            return cls(graph_id, ptype, tag=int(tag, 16))
        guid = guid.lower()
        if kind.lower() == "name":
            return cls(graph_id, ptype, guid, name=value)
        try:
            number = int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError as exc:
            raise bad_request(f"Invalid extended property id '{graph_id}'.",
                              "ErrorInvalidProperty") from exc
        return cls(graph_id, ptype, guid, prop_id=number)

    def uri(self, distinguished: bool = False) -> etree._Element:
        attrs: dict[str, str] = {}
        if self.set_id:
            if distinguished and self.set_id in DISTINGUISHED_SETS:
                attrs["DistinguishedPropertySetId"] = DISTINGUISHED_SETS[self.set_id]
            else:
                attrs["PropertySetId"] = self.set_id
        if self.name is not None:
            attrs["PropertyName"] = self.name
        if self.prop_id is not None:
            attrs["PropertyId"] = str(self.prop_id)
        if self.tag is not None:
            attrs["PropertyTag"] = hex(self.tag)
        attrs["PropertyType"] = self.ptype
        return etree.Element(tq("ExtendedFieldURI"), attrs)

    def store_keys(self) -> list[str]:
        """Store keys this property may be saved under (GUID or distinguished set name)."""
        keys = [ext_key(self.uri())]
        if self.set_id in DISTINGUISHED_SETS:
            keys.append(ext_key(self.uri(distinguished=True)))
        return keys


HAS_PICTURE = ("00062004-0000-0000-c000-000000000046", 0x8015)   # PidLidHasPicture
# MAPI tags that Exchange keeps as a contact's EWS PhoneNumbers entries: the same value
# whichever way a client reads or writes it.
PHONE_TAGS = {0x3A24: "BusinessFax", 0x3A1F: "OtherTelephone"}


def _phone_key(item: Item, prop: PropertyName) -> str | None:
    if item.tag == "Contact" and prop.tag in PHONE_TAGS and prop.ptype.lower() == "string":
        return PHONE_TAGS[prop.tag]
    return None


def _phone_entry(item: Item, key: str) -> etree._Element | None:
    holder = item.props.get("PhoneNumbers")
    if holder is None:
        return None
    return next((e for e in holder if e.get("Key") == key), None)


def _set_phone(item: Item, key: str, value: object) -> None:
    holder = item.props.get("PhoneNumbers")
    old = _phone_entry(item, key)
    if old is not None and holder is not None:
        holder.remove(old)
    if value not in (None, ""):
        if holder is None:
            holder = t_el("PhoneNumbers")
            item.props["PhoneNumbers"] = holder
        entry = etree.SubElement(holder, tq("Entry"), Key=key)
        entry.text = str(value)
    if holder is not None and not len(holder):
        del item.props["PhoneNumbers"]


def stored_value(item: Item, prop: PropertyName) -> str | None:
    phone = _phone_key(item, prop)
    if phone is not None:
        entry = _phone_entry(item, phone)
        return entry.text if entry is not None else None
    for key in prop.store_keys():
        el = item.ext.get(key)
        if el is not None:
            return el.findtext(tq("Value"))
    if (prop.set_id, prop.prop_id) == HAS_PICTURE and item.tag == "Contact":
        # Computed by Exchange from the contact's photo attachment.
        return "true" if any(a.is_contact_photo for a in item.attachments) else "false"
    return None


def set_values(item: Item, specs: object) -> None:
    """Apply `singleValueExtendedProperties` of a POST/PATCH body."""
    if not isinstance(specs, list):
        raise bad_request("singleValueExtendedProperties must be an array.")
    for spec in specs:
        if not isinstance(spec, dict) or "id" not in spec:
            raise bad_request("Each singleValueExtendedProperty needs an id and a value.")
        prop = PropertyName.parse(str(spec["id"]))
        value = spec.get("value")
        phone = _phone_key(item, prop)
        if phone is not None:
            _set_phone(item, phone, value)
            continue
        for key in prop.store_keys():
            item.ext.pop(key, None)
        if value is None:
            continue
        el = t_el("ExtendedProperty")
        el.append(prop.uri())
        etree.SubElement(el, tq("Value")).text = str(value).lower() \
            if isinstance(value, bool) else str(value)
        item.ext[prop.store_keys()[0]] = el


def expand_ids(options: dict[str, str]) -> list[PropertyName]:
    """`$expand=singleValueExtendedProperties($filter=id eq 'a' or id eq 'b')`."""
    text = options.get("$filter", "")
    if not text:
        raise bad_request("singleValueExtendedProperties must be expanded with a $filter on "
                          "id.", "ErrorInvalidUrlQuery")
    ids = []
    for part in re.split(r"\s+or\s+", text, flags=re.IGNORECASE):
        match = ID_FILTER.fullmatch(part)
        if match is None:
            raise GraphError(400, "ErrorInvalidUrlQueryFilter")
        ids.append(PropertyName.parse(match.group(1).replace("''", "'")))
    return ids


def render(item: Item, props: list[PropertyName]) -> list[dict[str, str]]:
    out = []
    for prop in props:
        value = stored_value(item, prop)
        if value is not None:
            out.append({"id": prop.graph_id, "value": value})
    return out


def parse_filter(text: str) -> tuple[PropertyName, str]:
    """The one $filter a sync backend needs: items whose stamp has a given value."""
    match = ANY_FILTER.match(text or "")
    if match is None:
        raise GraphError(400, "ErrorInvalidUrlQueryFilter")
    return PropertyName.parse(match.group(2).replace("''", "'")), match.group(3).replace("''",
                                                                                         "'")
