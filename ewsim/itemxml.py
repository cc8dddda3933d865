"""Items as XML: load the client's property elements into the store and render them back.

Architecture from notes §3.6: keep the client's own property elements keyed by local
name, add server-computed properties on output, filter by the requested shape, then
order children by the schema and canonicalise booleans/datetimes (exchangelib sends
1/0 and local offsets; it parses only true/false and answers are UTC).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
from dataclasses import dataclass, field

from lxml import etree

from . import bodies, ids, mimegen, recurrence, schema
from .ns import local, parse_bool, t_el, tq
from .store import ITEM_CLASS_BY_TAG, Attachment, Item, Store
from .timeutil import canonical_dt, fmt_dt, fmt_duration, parse_dt

# FieldURI suffix -> element name where they differ (notes §3.4 GetItem).
FIELD_ELEMENT = {
    "contacts:EmailAddress": "EmailAddresses",
    "contacts:PhoneNumber": "PhoneNumbers",
    "contacts:PhysicalAddress": "PhysicalAddresses",
    "contacts:ImAddress": "ImAddresses",
    "distributionlist:Members": "Members",
}
NON_PROPS = {"ItemId", "ParentFolderId", "Attachments", "ExtendedProperty", "MimeContent"}


def field_element(uri: str) -> str:
    base = uri.split(":")
    if len(base) >= 2:
        key = f"{base[0]}:{base[1]}"
        if key in FIELD_ELEMENT:
            return FIELD_ELEMENT[key]
    return base[1] if len(base) >= 2 else uri


def ext_key(uri: etree._Element) -> str:
    """Normalise an ExtendedFieldURI so lookups ignore GUID case and tag formatting."""
    get = uri.get
    tag = get("PropertyTag")
    if tag:
        tag = hex(int(tag, 16 if tag.lower().startswith("0x") else 10))
    parts = [(get("PropertySetId") or get("DistinguishedPropertySetId") or "").lower(),
             get("PropertyName") or "", get("PropertyId") or "", tag or "",
             get("PropertyType") or ""]
    return "|".join(parts)


# PidLidCleanGlobalObjectId (PSETID_Meeting, 0x23): Exchange computes it from a calendar
# item's UID (MS-OXOCAL 2.2.1.27-28) and keeps it when the item moves, unlike its ItemId.
CLEAN_GOID_KEYS = {f"{set_id}||35||Binary" for set_id in
                   ("meeting", "6ed8da90-450b-101b-98da-00aa003f1305")}
GOID_HEADER = bytes.fromhex("040000008200E00074C5B7101A82E008")


def clean_goid(uid: str) -> bytes:
    """A UID as its global object id, instance date zeroed: an Outlook id is the UID in hex;
    any other UID (from an iCalendar file) is wrapped as "vCal-Uid"."""
    try:
        raw = bytes.fromhex(uid)
    except ValueError:
        raw = b""
    if raw.startswith(GOID_HEADER):
        return raw[:16] + bytes(4) + raw[20:]
    data = b"vCal-Uid\x01\x00\x00\x00" + uid.encode() + b"\x00"
    return GOID_HEADER + bytes(20) + len(data).to_bytes(4, "little") + data


def server_ext(item: Item, key: str) -> etree._Element | None:
    """An extended property the server computes (not stored with the item), or None."""
    uid = item.text("UID") if item.tag == "CalendarItem" else None
    if key not in CLEAN_GOID_KEYS or not uid:
        return None
    prop = t_el("ExtendedProperty")
    etree.SubElement(prop, tq("ExtendedFieldURI"), DistinguishedPropertySetId="Meeting",
                     PropertyId="35", PropertyType="Binary")
    etree.SubElement(prop, tq("Value")).text = base64.b64encode(clean_goid(uid)).decode()
    return prop


def ext_value(item: Item, uri: etree._Element) -> etree._Element | None:
    """The item's extended property named by `uri`: stored, or computed by the server."""
    key = ext_key(uri)
    stored = item.ext.get(key)
    return stored if stored is not None else server_ext(item, key)


@dataclass
class Shape:
    base: str = "IdOnly"
    fields: set[str] = field(default_factory=set)
    ext: list[etree._Element] = field(default_factory=list)
    include_mime: bool = False
    body_type: str = "Best"    # Best (as stored), HTML or Text: see bodies.py

    @property
    def everything(self) -> bool:
        return self.base in ("AllProperties", "Default")

    def wants(self, name: str) -> bool:
        return self.everything or name in self.fields

    @classmethod
    def parse(cls, shape_el: etree._Element | None) -> Shape:
        shape = cls()
        if shape_el is None:
            return shape
        base = shape_el.find(tq("BaseShape"))
        if base is not None and base.text:
            shape.base = base.text.strip()
        mime = shape_el.find(tq("IncludeMimeContent"))
        shape.include_mime = mime is not None and parse_bool(mime.text)
        body_type = shape_el.findtext(tq("BodyType"))
        if body_type:
            shape.body_type = body_type.strip()
        props = shape_el.find(tq("AdditionalProperties"))
        if props is not None:
            for p in props:
                name = local(p)
                if name in ("FieldURI", "IndexedFieldURI"):
                    shape.fields.add(field_element(p.get("FieldURI", "")))
                elif name == "ExtendedFieldURI":
                    shape.ext.append(p)
        if "MimeContent" in shape.fields:
            shape.include_mime = True
        return shape


# --- loading client XML ------------------------------------------------------------------------
def load_attachment(el: etree._Element) -> Attachment:
    name = el.findtext(tq("Name")) or ""
    att = Attachment(id=ids.attachment_id(), name=name,
                     content_type=el.findtext(tq("ContentType")) or "application/octet-stream",
                     is_inline=parse_bool(el.findtext(tq("IsInline"))),
                     is_contact_photo=parse_bool(el.findtext(tq("IsContactPhoto"))),
                     content_id=el.findtext(tq("ContentId")))
    if local(el) == "FileAttachment":
        content = el.find(tq("Content"))
        att.content = base64.b64decode(content.text or "") if content is not None else b""
        if content is not None:
            content.text = None   # drop the base64 text right away: never keep two copies
    else:
        for child in el:
            if local(child) in schema.ITEM_TYPES:
                att.item = load_item(child)
                break
    return att


def load_item(el: etree._Element, folder_id: str = "", mailbox: str = "") -> Item:
    item = Item(id=ids.item_id(), tag=local(el), folder_id=folder_id, mailbox=mailbox)
    apply_props(item, el)
    atts = el.find(tq("Attachments"))
    if atts is not None:
        item.attachments = [load_attachment(a) for a in atts]
    mime = el.find(tq("MimeContent"))
    if mime is not None and mime.text:
        item.mime = base64.b64decode(mime.text)
    item.size = len(etree.tostring(el)) if not item.attachments else 1000
    item.size += sum(a.size for a in item.attachments)
    return item


def apply_props(item: Item, el: etree._Element) -> None:
    """Set every property element of `el` on `item` (used by create and SetItemField)."""
    for child in el:
        if not isinstance(child.tag, str):
            continue
        name = local(child)
        if name == "ExtendedProperty":
            uri = child.find(tq("ExtendedFieldURI"))
            if uri is not None:
                item.ext[ext_key(uri)] = copy.deepcopy(child)
        elif name in ("EmailAddresses", "PhoneNumbers", "PhysicalAddresses", "ImAddresses"):
            merge_entries(item, child)
        elif name not in NON_PROPS:
            item.props[name] = copy.deepcopy(child)


def merge_entries(item: Item, el: etree._Element) -> None:
    """Indexed properties: merge per Entry Key (and per sub-element for addresses)."""
    name = local(el)
    current = item.props.get(name)
    if current is None:
        current = t_el(name)
        item.props[name] = current
    for entry in el.findall(tq("Entry")):
        key = entry.get("Key")
        existing = next((e for e in current if e.get("Key") == key), None)
        if name == "PhysicalAddresses" and existing is not None:
            for part in entry:
                old = existing.find(part.tag)
                if old is not None:
                    existing.remove(old)
                existing.append(copy.deepcopy(part))
            _sort_children(existing, "PhysicalAddressDictionaryEntryType")
        else:
            if existing is not None:
                current.remove(existing)
            current.append(copy.deepcopy(entry))


def delete_indexed(item: Item, field_uri: str, index: str) -> None:
    name = field_element(field_uri)
    current = item.props.get(name)
    if current is None:
        return
    entry = next((e for e in current if e.get("Key") == index), None)
    if entry is None:
        return   # exchangelib deletes absent labels, sometimes twice: tolerate it
    parts = field_uri.split(":")
    if name == "PhysicalAddresses" and len(parts) == 3:
        sub_el = entry.find(tq(parts[2]))
        if sub_el is not None:
            entry.remove(sub_el)
        if len(entry):
            return
    current.remove(entry)
    if not len(current):
        del item.props[name]


def _sort_children(el: etree._Element, type_name: str) -> None:
    order = schema.type_info(type_name).order
    children = sorted(el, key=lambda c: order.get(local(c), 10_000))
    for c in children:
        el.append(c)


# --- rendering -------------------------------------------------------------------------------
def attachment_meta(att: Attachment, item: Item | None = None) -> etree._Element:
    tag = "FileAttachment" if att.item is None else "ItemAttachment"
    el = t_el(tag)
    aid = etree.SubElement(el, tq("AttachmentId"), Id=att.id)
    if item is not None:
        aid.set("RootItemId", item.id)
        aid.set("RootItemChangeKey", item.changekey)
    etree.SubElement(el, tq("Name")).text = att.name
    etree.SubElement(el, tq("ContentType")).text = att.content_type
    if att.content_id:
        etree.SubElement(el, tq("ContentId")).text = att.content_id
    etree.SubElement(el, tq("Size")).text = str(att.size)
    etree.SubElement(el, tq("LastModifiedTime")).text = fmt_dt(att.last_modified)
    etree.SubElement(el, tq("IsInline")).text = "true" if att.is_inline else "false"
    if att.item is None:
        etree.SubElement(el, tq("IsContactPhoto")).text = (
            "true" if att.is_contact_photo else "false")
    return el


def _mailbox_el(tag: str, address: str, name: str | None = None) -> etree._Element:
    el = t_el(tag)
    mbx = etree.SubElement(el, tq("Mailbox"))
    if name:
        etree.SubElement(mbx, tq("Name")).text = name
    etree.SubElement(mbx, tq("EmailAddress")).text = address
    etree.SubElement(mbx, tq("RoutingType")).text = "SMTP"
    return el


def organizer_of(item: Item) -> str:
    """A calendar item's organizer: the one its creator stored (an attendee's copy of a
    meeting names someone else), else the mailbox itself, as for an appointment of its own."""
    stored = item.props.get("Organizer")
    address = stored.findtext(f"{tq('Mailbox')}/{tq('EmailAddress')}") \
        if stored is not None else None
    return address or item.mailbox


def my_response(item: Item) -> str:
    """MyResponseType: the stored answer, else Organizer on the organizer's own copy and
    NoResponseReceived on an attendee's."""
    stored = item.text("MyResponseType")
    if stored:
        return stored
    mine = organizer_of(item).lower() == item.mailbox.lower()
    return "Organizer" if mine else "NoResponseReceived"


def computed(store: Store, item: Item) -> dict[str, etree._Element]:
    """Server-set properties (ItemClass, times, sizes, calendar/meeting flags...)."""
    out: dict[str, etree._Element] = {}
    folder = store.folders.get(item.folder_id)
    out["ItemClass"] = t_el("ItemClass", ITEM_CLASS_BY_TAG.get(item.tag, "IPM.Note"))
    out["DateTimeReceived"] = t_el("DateTimeReceived", fmt_dt(item.received))
    out["DateTimeCreated"] = t_el("DateTimeCreated", fmt_dt(item.created))
    out["LastModifiedTime"] = t_el("LastModifiedTime", fmt_dt(item.modified))
    out["Size"] = t_el("Size", str(item.size))
    out["HasAttachments"] = t_el("HasAttachments", "true" if any(
        not a.is_inline for a in item.attachments) else "false")
    if item.attachments:
        atts = t_el("Attachments")
        for att in item.attachments:
            atts.append(attachment_meta(att))
        out["Attachments"] = atts
    if item.tag == "Message":
        out["DateTimeSent"] = t_el("DateTimeSent", fmt_dt(item.received))
        out["IsDraft"] = t_el("IsDraft", "true" if folder and folder.distinguished == "drafts"
                              else "false")
        out["IsRead"] = t_el("IsRead", "false")
    if item.tag == "CalendarItem":
        recurring = "Recurrence" in item.props
        out["CalendarItemType"] = t_el("CalendarItemType",
                                       "RecurringMaster" if recurring else "Single")
        out["IsRecurring"] = t_el("IsRecurring", "false")
        has_attendees = any(k in item.props for k in
                            ("RequiredAttendees", "OptionalAttendees", "Resources"))
        out["IsMeeting"] = t_el("IsMeeting", "true" if has_attendees else "false")
        out["IsCancelled"] = t_el("IsCancelled", "false")
        out["MyResponseType"] = t_el("MyResponseType", my_response(item))
        owner = store.users.get(item.mailbox)
        out["Organizer"] = _mailbox_el("Organizer", item.mailbox,
                                       owner.display_name if owner else None)
        out["MeetingRequestWasSent"] = t_el("MeetingRequestWasSent", "true" if any(
            s != "SendToNone" for s in item.meeting_requests_sent) else "false")
        start, end = parse_dt(item.text("Start")), parse_dt(item.text("End"))
        if start is not None and end is not None:   # elapsed time: 23 h for a spring day
            out["Duration"] = t_el("Duration", fmt_duration(end - start))
    if item.tag == "Contact":
        out["HasPicture"] = t_el("HasPicture", "true" if any(
            a.is_contact_photo for a in item.attachments) else "false")
    return out


def _occurrence_info(tag: str, master: Item, index: int, start: dt.datetime, end: dt.datetime,
                     original: dt.datetime) -> etree._Element:
    exc = master.exceptions.get(index)
    el = t_el(tag)
    etree.SubElement(el, tq("ItemId"), Id=ids.occurrence_id(master.id, index),
                     ChangeKey=exc.changekey if exc is not None else master.changekey)
    etree.SubElement(el, tq("Start")).text = fmt_dt(start)
    etree.SubElement(el, tq("End")).text = fmt_dt(end)
    etree.SubElement(el, tq("OriginalStart")).text = fmt_dt(original)
    _sort_children(el, "OccurrenceInfoType")
    return el


def series_props(item: Item, shape: Shape) -> dict[str, etree._Element]:
    """Recurrence (normalised), First/LastOccurrence, Modified/DeletedOccurrences of a master.

    The occurrence lists are computed only when asked for: they need the expansion, and
    LastOccurrence is left out for a series without end (there is none).
    """
    out: dict[str, etree._Element] = {}
    rec = recurrence.render_recurrence(item)
    if rec is not None:
        out["Recurrence"] = rec
    if shape.wants("FirstOccurrence"):
        first = next(recurrence.instances(item), None)
        if first is not None:
            out["FirstOccurrence"] = _occurrence_info("FirstOccurrence", item, *first)
    if shape.wants("LastOccurrence") and recurrence.is_bounded(item):
        last = None
        for last in recurrence.instances(item):   # noqa: B007 (want the final one)
            pass
        if last is not None:
            out["LastOccurrence"] = _occurrence_info("LastOccurrence", item, *last)
    wanted = ((set(item.exceptions) if shape.wants("ModifiedOccurrences") else set())
              | (item.deleted_occurrences if shape.wants("DeletedOccurrences") else set()))
    if not wanted:
        return out
    originals: dict[int, dt.datetime] = {}
    for idx, start, _end in recurrence.slots(item):   # one pass, in original-start order
        if idx in wanted:
            originals[idx] = start
        if idx >= max(wanted):
            break
    modified = [i for i in sorted(item.exceptions) if i in originals]
    if modified and shape.wants("ModifiedOccurrences"):
        el = t_el("ModifiedOccurrences")
        for idx in modified:
            start, end = item.exceptions[idx].times()
            el.append(_occurrence_info("Occurrence", item, idx, start, end, originals[idx]))
        out["ModifiedOccurrences"] = el
    deleted = [i for i in sorted(item.deleted_occurrences) if i in originals]
    if deleted and shape.wants("DeletedOccurrences"):
        el = t_el("DeletedOccurrences")
        for idx in deleted:
            occ = etree.SubElement(el, tq("DeletedOccurrence"))
            etree.SubElement(occ, tq("Start")).text = fmt_dt(originals[idx])
        out["DeletedOccurrences"] = el
    return out


def canonical(el: etree._Element, info: schema.TypeInfo) -> etree._Element:
    name = local(el)
    if name in info.booleans:
        el.text = "true" if parse_bool(el.text) else "false"
    elif name in info.datetimes:
        el.text = canonical_dt(el.text)
    elif name == "ExtendedProperty":
        uri = el.find(tq("ExtendedFieldURI"))
        ptype = uri.get("PropertyType") if uri is not None else None
        for value in el.iter(tq("Value")):
            if ptype == "Boolean":
                value.text = "true" if parse_bool(value.text) else "false"
            elif ptype == "SystemTime":
                value.text = canonical_dt(value.text)
    return el


def render_item(store: Store, item: Item, shape: Shape,
                overrides: dict[str, etree._Element | None] | None = None,
                item_id: str | None = None) -> etree._Element:
    tag = item.tag
    info = schema.type_info(schema.ITEM_TYPES.get(tag, "ItemType"))
    out = t_el(tag)
    children: list[etree._Element] = []
    children.append(etree.Element(tq("ItemId"), Id=item_id or item.id, ChangeKey=item.changekey))
    folder = store.folders.get(item.folder_id)
    if shape.wants("ParentFolderId") and folder is not None:
        children.append(etree.Element(tq("ParentFolderId"), Id=folder.id,
                                      ChangeKey=folder.changekey))
    raw = mimegen.mime_content(item) if shape.include_mime else None
    if raw is not None:
        mime = t_el("MimeContent", base64.b64encode(raw).decode(), CharacterSet="UTF-8")
        children.append(mime)
    values: dict[str, etree._Element | None] = dict(computed(store, item))
    values.update(item.props)
    # TextBody only when named: AllProperties does not include it.
    values.update(bodies.body_values(item, shape.body_type, "TextBody" in shape.fields))
    if item.tag == "CalendarItem" and "Recurrence" in item.props:
        values.update(series_props(item, shape))
    if overrides:
        values.update(overrides)
    for name, el in values.items():
        if el is None or not shape.wants(name) or name not in info.order:
            continue
        children.append(canonical(copy.deepcopy(el), info))
    for uri in shape.ext:
        stored = ext_value(item, uri)
        if stored is None:
            continue
        echo = copy.deepcopy(stored)
        # Echo the request's URI attributes verbatim: exchangelib compares them
        # case-sensitively (notes §1.11).
        old = echo.find(tq("ExtendedFieldURI"))
        echo.replace(old, copy.deepcopy(uri))
        children.append(canonical(echo, info))
    if shape.everything and not shape.ext:
        children.extend(canonical(copy.deepcopy(e), info) for e in item.ext.values())
    order = info.order
    children.sort(key=lambda c: order.get(local(c), 10_000))
    out.extend(children)
    return out


def item_ids_only(item: Item, tag: str | None = None) -> etree._Element:
    el = t_el(tag or item.tag)
    etree.SubElement(el, tq("ItemId"), Id=item.id, ChangeKey=item.changekey)
    return el

