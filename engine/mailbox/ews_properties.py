"""What the EWS backend stamps on items and finds them by: the identity stamp, the contact's
title and a meeting's global object id, as extended properties registered on exchangelib's
item classes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from exchangelib import CalendarItem, Contact, ExtendedProperty, Message, Q

from engine.mailbox.stamps import STAMP_PROPERTY_NAME, STAMP_PROPERTY_SET


class SyncStamp(ExtendedProperty):
    """The CRM key of the record an item is linked to (ARCHITECTURE §3, identity stamps)."""

    property_set_id = STAMP_PROPERTY_SET
    property_name = STAMP_PROPERTY_NAME
    property_type = "String"


class DisplayNamePrefix(ExtendedProperty):
    """A contact's title ("Ing.", "Dr."): EWS has no writable field for it, MAPI does."""

    property_tag = 0x3A45
    property_type = "String"


class CleanGlobalObjectId(ExtendedProperty):
    """PidLidCleanGlobalObjectId: a meeting's identity in the mailbox, kept when the item moves
    (unlike its ItemId). Exchange derives it from the UID (MS-OXOCAL 2.2.1.28)."""

    distinguished_property_set_id = "Meeting"
    property_id = 0x23
    property_type = "Binary"


# MS-OXOCAL 2.2.1.27: an Outlook global object id starts with this class id; its UID is the
# id in hex. Any other UID (one from an iCalendar file) is wrapped as "vCal-Uid".
GOID_HEADER = bytes.fromhex("040000008200E00074C5B7101A82E008")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")


def clean_goid(uid: str) -> bytes:
    """The PidLidCleanGlobalObjectId of the meeting with this UID (its instance date zeroed)."""
    if _HEX.fullmatch(uid) and uid[:32].upper() == GOID_HEADER.hex().upper():
        goid = bytearray(bytes.fromhex(uid))
        goid[16:20] = b"\0\0\0\0"
        return bytes(goid)
    data = b"vCal-Uid\x01\x00\x00\x00" + uid.encode() + b"\x00"
    return GOID_HEADER + bytes(20) + len(data).to_bytes(4, "little") + data


def sought_query(keys: Sequence[tuple[str, Any]]) -> Q:
    """A restriction matching any of these stamps and meeting global object ids."""
    stamps = [value for name, value in keys if name == "stamp"]
    goids = [value for name, value in keys if name == "goid"]
    if stamps and goids:
        return Q(sync_stamp__in=stamps) | Q(clean_global_object_id__in=goids)
    return Q(sync_stamp__in=stamps) if stamps else Q(clean_global_object_id__in=goids)


def _register(cls: type, name: str, prop: type) -> None:
    # Registration is process-wide and refuses a second registration under the same name.
    if name not in {f.name for f in cls.FIELDS}:
        cls.register(name, prop)


for _item_class in (Contact, CalendarItem, Message):
    _register(_item_class, "sync_stamp", SyncStamp)
_register(Contact, "title_prefix", DisplayNamePrefix)
_register(CalendarItem, "clean_global_object_id", CleanGlobalObjectId)
