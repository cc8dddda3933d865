"""Contacts: JSON <-> store mapping, CRUD, per-folder delta, the contact photo."""

from __future__ import annotations

from typing import Any

from lxml import etree

from .. import ids, limits
from ..ns import T, sub, tq
from ..operations.items import prepare_new
from ..store import Attachment, Item
from . import items, props
from .context import GraphContext, GraphResponse
from .delta import folder_delta
from .errors import GraphError, bad_request
from .folders import contact_folder
from .odata import etag, fmt_offset
from .router import route

ODATA_TYPE = "#microsoft.graph.contact"
SCALARS = {   # Graph name -> EWS element
    "givenName": "GivenName", "surname": "Surname", "middleName": "MiddleName",
    "nickName": "Nickname", "displayName": "DisplayName", "fileAs": "FileAs",
    "initials": "Initials", "generation": "Generation", "companyName": "CompanyName",
    "jobTitle": "JobTitle", "department": "Department", "officeLocation": "OfficeLocation",
    "profession": "Profession", "businessHomePage": "BusinessHomePage",
    "assistantName": "AssistantName", "manager": "Manager", "spouseName": "SpouseName",
    "yomiGivenName": "YomiFirstName", "yomiSurname": "YomiLastName",
    "yomiCompanyName": "YomiCompanyName",
}
PHONES = {"businessPhones": ["BusinessPhone", "BusinessPhone2"],
          "homePhones": ["HomePhone", "HomePhone2"]}
ADDRESSES = {"homeAddress": "Home", "businessAddress": "Business", "otherAddress": "Other"}
ADDRESS_PARTS = [("street", "Street"), ("city", "City"), ("state", "State"),
                 ("countryOrRegion", "CountryOrRegion"), ("postalCode", "PostalCode")]
EMAIL_KEYS = ["EmailAddress1", "EmailAddress2", "EmailAddress3"]
IM_KEYS = ["ImAddress1", "ImAddress2", "ImAddress3"]
PHOTO_NAME = "ContactPicture.jpg"
READ_ONLY = {"id", "createdDateTime", "lastModifiedDateTime", "changeKey", "parentFolderId",
             "@odata.etag", "@odata.type", "@odata.context", "photo"}


def to_json(ctx: GraphContext, item: Item) -> dict[str, Any]:
    emails = props.entries(item, "EmailAddresses")
    phones = props.entries(item, "PhoneNumbers")
    ims = props.entries(item, "ImAddresses")
    places = props.entries(item, "PhysicalAddresses")
    data: dict[str, Any] = {
        "@odata.etag": etag(item.changekey), "id": ctx.item_id(item),
        "createdDateTime": fmt_offset(item.created),
        "lastModifiedDateTime": fmt_offset(item.modified), "changeKey": item.changekey,
        "categories": props.strings(item, "Categories"), "parentFolderId": item.folder_id,
        "birthday": props.offset(item, "Birthday"), "title": None,
    }
    for name, element in SCALARS.items():
        data[name] = props.text(item, element)
    data["imAddresses"] = [ims[k].text or "" for k in IM_KEYS if k in ims]
    for name, keys in PHONES.items():
        data[name] = [phones[k].text or "" for k in keys if k in phones and phones[k].text]
    mobile = phones.get("MobilePhone")
    data["mobilePhone"] = mobile.text if mobile is not None else None
    data["personalNotes"] = props.body(item)["content"]
    data["children"] = props.strings(item, "Children")
    data["emailAddresses"] = [{"name": emails[k].get("Name") or emails[k].text or "",
                               "address": emails[k].text or ""}
                              for k in EMAIL_KEYS if k in emails]
    for name, key in ADDRESSES.items():
        entry = places.get(key)
        data[name] = {} if entry is None else {
            graph: entry.findtext(tq(ews)) for graph, ews in ADDRESS_PARTS
            if entry.find(tq(ews)) is not None}
    return data


def _address_entry(value: dict[str, Any]) -> etree._Element:
    entry = etree.Element(tq("Entry"))
    for graph, ews in ADDRESS_PARTS:
        if value.get(graph):
            sub(entry, T, ews, str(value[graph]))
    return entry


def apply_json(item: Item, data: dict[str, Any]) -> None:
    """Set the properties present in a POST/PATCH body (null clears; arrays replace)."""
    limits.check_graph_contact(data)   # before anything is set: refused whole
    for name, value in data.items():
        if name in SCALARS:
            props.set_text(item, SCALARS[name], value)
        elif name == "categories":
            props.set_strings(item, "Categories", value)
        elif name == "children":
            props.set_strings(item, "Children", value)
        elif name == "birthday":
            props.set_offset(item, "Birthday", value)
        elif name == "personalNotes":
            props.set_body(item, None if value is None else {"contentType": "text",
                                                            "content": value})
        elif name == "emailAddresses":
            new = []
            for key, spec in zip(EMAIL_KEYS, value or [], strict=False):
                if not isinstance(spec, dict) or not spec.get("address"):
                    raise bad_request("emailAddresses entries need an address.",
                                      "ErrorInvalidProperty")
                entry = etree.Element(tq("Entry"))
                entry.text = str(spec["address"])
                if spec.get("name"):
                    entry.set("Name", str(spec["name"]))
                new.append((key, entry))
            if value and len(value) > len(EMAIL_KEYS):
                raise bad_request("A contact has at most 3 e-mail addresses.",
                                  "ErrorInvalidProperty")
            props.replace_entries(item, "EmailAddresses", EMAIL_KEYS, new)
        elif name == "imAddresses":
            new = []
            for key, address in zip(IM_KEYS, value or [], strict=False):
                entry = etree.Element(tq("Entry"))
                entry.text = str(address)
                new.append((key, entry))
            props.replace_entries(item, "ImAddresses", IM_KEYS, new)
        elif name in PHONES:
            keys = PHONES[name]
            new = []
            for key, number in zip(keys, value or [], strict=False):
                entry = etree.Element(tq("Entry"))
                entry.text = str(number)
                new.append((key, entry))
            props.replace_entries(item, "PhoneNumbers", keys, new)
        elif name == "mobilePhone":
            new = []
            if value:
                entry = etree.Element(tq("Entry"))
                entry.text = str(value)
                new.append(("MobilePhone", entry))
            props.replace_entries(item, "PhoneNumbers", ["MobilePhone"], new)
        elif name in ADDRESSES:
            key = ADDRESSES[name]
            if value is not None and not isinstance(value, dict):
                raise bad_request(f"{name} must be a physicalAddress object.",
                                  "ErrorInvalidProperty")
            entry = _address_entry(value or {})
            props.replace_entries(item, "PhysicalAddresses", [key],
                                  [(key, entry)] if len(entry) else [])
        elif name == "singleValueExtendedProperties":
            items.apply_extended(item, data)
        elif name == "title" or name in READ_ONLY:
            continue
        else:
            raise bad_request(f"The property '{name}' does not exist on type "
                              f"'microsoft.graph.contact'. Make sure to only use property "
                              f"names that are defined by the type.", "ErrorInvalidProperty")
    if "DisplayName" not in item.props:
        # Exchange composes the display name when the client gives none.
        parts = [item.text(n) for n in ("GivenName", "MiddleName", "Surname")]
        composed = " ".join(p for p in parts if p)
        if composed:
            props.set_text(item, "DisplayName", composed)


def _contact(ctx: GraphContext, contact: str) -> Item:
    item = ctx.find_item(contact)
    if item.tag != "Contact":
        raise GraphError(404, "ErrorItemNotFound")
    return item


def _fragment(ctx: GraphContext) -> str:
    return f"users('{ctx.mailbox}')/contacts/$entity"


def _create(ctx: GraphContext, folder_ref: str) -> GraphResponse:
    folder = contact_folder(ctx, folder_ref)
    data = ctx.request.json()
    item = Item(id=ids.item_id(), tag="Contact", folder_id=folder.id, mailbox=folder.mailbox)
    apply_json(item, data)
    prepare_new(item, folder.mailbox)
    item.size = 500
    ctx.store.add_item(folder, item)
    return items.entity(ctx, item, to_json, _fragment(ctx), status=201)


@route("POST", "contacts", "contacts.create")
def create_default(ctx: GraphContext) -> GraphResponse:
    return _create(ctx, "contacts")


@route("POST", "contactFolders/{folder}/contacts", "contacts.create")
def create_in_folder(ctx: GraphContext, folder: str) -> GraphResponse:
    return _create(ctx, folder)


@route("GET", "contacts", "contacts.list")
def list_default(ctx: GraphContext) -> GraphResponse:
    folder = contact_folder(ctx, "contacts")
    return items.listing(ctx, [i for i in folder.items.values() if i.tag == "Contact"],
                         to_json, "contacts", f"users('{ctx.mailbox}')/contacts")


@route("GET", "contactFolders/{folder}/contacts", "contacts.list")
def list_in_folder(ctx: GraphContext, folder: str) -> GraphResponse:
    found = contact_folder(ctx, folder)
    return items.listing(ctx, [i for i in found.items.values() if i.tag == "Contact"],
                         to_json, f"contactFolders/{folder}/contacts",
                         f"users('{ctx.mailbox}')/contactFolders('{found.id}')/contacts")


@route("GET", "contactFolders/{folder}/contacts/delta", "contacts.delta")
def delta(ctx: GraphContext, folder: str) -> GraphResponse:
    found = contact_folder(ctx, folder)
    return folder_delta(ctx, found, f"contactFolders/{folder}/contacts/delta", ODATA_TYPE,
                        lambda i, _where: i.tag == "Contact", _delta_shape)


def _delta_shape(ctx: GraphContext, item: Item, select: str | None,
                 expand: str | None) -> dict[str, Any]:
    return items.shaped(ctx, item, to_json, select=select, expand=expand, from_query=False)


@route("GET", "contacts/{contact}", "contacts.get")
def get(ctx: GraphContext, contact: str) -> GraphResponse:
    return items.entity(ctx, _contact(ctx, contact), to_json, _fragment(ctx))


@route("GET", "contactFolders/{folder}/contacts/{contact}", "contacts.get")
def get_in_folder(ctx: GraphContext, folder: str, contact: str) -> GraphResponse:
    return get(ctx, contact)


@route("PATCH", "contacts/{contact}", "contacts.update")
def update(ctx: GraphContext, contact: str) -> GraphResponse:
    item = _contact(ctx, contact)
    items.check_if_match(ctx, item)
    data = ctx.request.json()
    apply_json(item, data)
    ctx.store.updated(item)
    return items.entity(ctx, item, to_json, _fragment(ctx))


@route("PATCH", "contactFolders/{folder}/contacts/{contact}", "contacts.update")
def update_in_folder(ctx: GraphContext, folder: str, contact: str) -> GraphResponse:
    return update(ctx, contact)


@route("DELETE", "contacts/{contact}", "contacts.delete")
def delete(ctx: GraphContext, contact: str) -> GraphResponse:
    item = _contact(ctx, contact)
    items.check_if_match(ctx, item)
    items.soft_delete(ctx, item)
    return GraphResponse(204)


@route("DELETE", "contactFolders/{folder}/contacts/{contact}", "contacts.delete")
def delete_in_folder(ctx: GraphContext, folder: str, contact: str) -> GraphResponse:
    return delete(ctx, contact)


# --- photo: stored as EWS stores it, an attachment with IsContactPhoto ----------------------
def _photo(item: Item) -> Attachment | None:
    return next((a for a in item.attachments if a.is_contact_photo), None)


@route("GET", "contacts/{contact}/photo", "contacts.photo.get")
def photo_meta(ctx: GraphContext, contact: str) -> GraphResponse:
    att = _photo(_contact(ctx, contact))
    if att is None:
        raise GraphError(404, "ErrorItemNotFound", "The photo wasn't found.")
    return GraphResponse(200, {"@odata.context": ctx.context_url("photo/$entity"),
                               "@odata.mediaContentType": att.content_type,
                               "@odata.mediaEtag": etag(att.id), "id": "default",
                               "height": None, "width": None})


@route("GET", "contacts/{contact}/photo/$value", "contacts.photo.get")
def photo_value(ctx: GraphContext, contact: str) -> GraphResponse:
    att = _photo(_contact(ctx, contact))
    if att is None or att.content is None:
        raise GraphError(404, "ErrorItemNotFound", "The photo wasn't found.")
    return GraphResponse(200, att.content, content_type=att.content_type)


@route("PUT", "contacts/{contact}/photo/$value", "contacts.photo.put")
def photo_put(ctx: GraphContext, contact: str) -> GraphResponse:
    item = _contact(ctx, contact)
    content = ctx.request.body
    if not content:
        raise bad_request("Empty Payload. An image is expected.")
    old = _photo(item)
    if old is not None:
        item.attachments.remove(old)
        ctx.store.attachments.pop(old.id, None)
    att = Attachment(id=ids.attachment_id(), name=PHOTO_NAME,
                     content_type=ctx.request.headers.get("content-type") or "image/jpeg",
                     content=content, is_contact_photo=True)
    item.attachments.append(att)
    ctx.store.attachments[att.id] = (item, att)
    ctx.store.updated(item)
    return GraphResponse(200)


@route("DELETE", "contacts/{contact}/photo", "contacts.photo.delete")
@route("DELETE", "contacts/{contact}/photo/$value", "contacts.photo.delete")
def photo_delete(ctx: GraphContext, contact: str) -> GraphResponse:
    item = _contact(ctx, contact)
    old = _photo(item)
    if old is None:
        raise GraphError(404, "ErrorItemNotFound", "The photo wasn't found.")
    item.attachments.remove(old)
    ctx.store.attachments.pop(old.id, None)
    ctx.store.updated(item)
    return GraphResponse(204)
