"""What the EWS folder picker asks of each folder, and how it reads the answer.

Besides the kind's own folders, an Exchange mailbox holds hidden and system folders of the same
kind or a subkind: under Contacts the Recipient Cache ("IPF.Contact.RecipientCache"), the
Organizational Contacts, the GAL Contacts…; beside them ExternalContacts and PersonMetadata,
hidden folders of class "IPF.Contact". Outlook shows none of them; the picker neither.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from exchangelib import ExtendedProperty
from exchangelib.fields import ExtendedPropertyField, FieldPath

from engine.mailbox.ews_services import FOLDER_FIELDS, local_name
from engine.records import Kind


class AttributeHidden(ExtendedProperty):
    """PidTagAttributeHidden (MS-OXPROPS 2.611): true on a folder Outlook does not show."""

    property_tag = 0x10F4
    property_type = "Boolean"


# Read from the FindFolder answer only (not registered on exchangelib's Folder class).
HIDDEN_FIELD = ExtendedPropertyField("attribute_hidden", value_cls=AttributeHidden)
PICKER_FIELDS = {*FOLDER_FIELDS, FieldPath(field=HIDDEN_FIELD)}

# The class a folder must have to be offered for an agenda: exactly the kind's own (a folder
# without a class is a mail folder).
PICKED_CLASS = {"IPF.Appointment": Kind.CALENDAR, "IPF.Contact": Kind.CONTACTS,
                "IPF.Note": Kind.MAIL}


class PickerFacts(NamedTuple):
    id: str
    name: str
    parent_id: str
    folder_class: str | None
    total: int | None
    hidden: bool
    element: str                 # Folder, ContactsFolder, SearchFolder…


def picker_facts(element: Any) -> PickerFacts:
    values = {local_name(child): child.text or child.get("Id") or "" for child in element
              if isinstance(child.tag, str)}
    # Exchange leaves the property out on folders where it was never set: visible ones.
    hidden = bool(HIDDEN_FIELD.from_xml(element, account=None))
    total = values.get("TotalCount", "")
    return PickerFacts(id=values.get("FolderId", ""), name=values.get("DisplayName", ""),
                       parent_id=values.get("ParentFolderId", ""),
                       folder_class=values.get("FolderClass") or None,
                       total=int(total) if total.isdigit() else None, hidden=hidden,
                       element=local_name(element))
