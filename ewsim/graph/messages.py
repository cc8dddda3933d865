"""Mail: message JSON, per-folder delta, reads, draft creation, flag/read/category edits,
attachments with their raw `$value` (streamed) and the message's MIME."""

from __future__ import annotations

import base64
import re
from typing import Any

from .. import ids
from ..mimegen import message_mime
from ..ns import T, sub, t_el
from ..operations.items import prepare_new
from ..store import Attachment, Item
from ..timeutil import parse_dt
from . import items, props
from .context import GraphContext, GraphResponse
from .delta import folder_delta
from .errors import GraphError, bad_request
from .folders import MAIL_CLASSES, mail_folder
from .odata import etag, fmt_offset, parse_select, project
from .router import route

ODATA_TYPE = "#microsoft.graph.message"
MAIL_TAGS = {"Message", "MeetingRequest", "MeetingResponse", "MeetingCancellation", "PostItem"}
IMPORTANCE = {"Low": "low", "Normal": "normal", "High": "high"}
RECEIVED_FILTER = re.compile(r"^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$", re.IGNORECASE)
FLAG = {"NotFlagged": "notFlagged", "Flagged": "flagged", "Complete": "complete"}
WRITABLE = {"subject", "body", "toRecipients", "ccRecipients", "bccRecipients", "replyTo",
            "categories", "importance", "isRead", "flag", "singleValueExtendedProperties",
            "internetMessageId"}
READ_ONLY = {"id", "@odata.etag", "@odata.type", "@odata.context", "changeKey",
             "createdDateTime", "lastModifiedDateTime", "receivedDateTime", "sentDateTime",
             "hasAttachments", "parentFolderId", "conversationId", "isDraft", "webLink",
             "bodyPreview", "from", "sender", "inferenceClassification"}


def is_mail(item: Item) -> bool:
    return item.tag in MAIL_TAGS


def in_mail_folder(ctx: GraphContext, item: Item) -> bool:
    """A mail folder's /messages is its item table: a contact or appointment moved to
    Deleted Items is listed there too, as a message resource."""
    folder = ctx.store.folders.get(item.folder_id)
    return is_mail(item) or (folder is not None and folder.folder_class in MAIL_CLASSES)


def to_json(ctx: GraphContext, item: Item) -> dict[str, Any]:
    folder = ctx.store.folders.get(item.folder_id)
    body = props.body(item)
    preview = re.sub(r"<[^>]+>", " ", body["content"]) if body["contentType"] == "html" \
        else body["content"]
    read = item.text("IsRead")
    flag_el = item.props.get("Flag")
    flag_status = "notFlagged"
    if flag_el is not None:
        flag_status = FLAG.get(flag_el.findtext("{*}FlagStatus") or "", "notFlagged")
    sender = item.props.get("Sender")
    frm = item.props.get("From")
    return {
        "@odata.etag": etag(item.changekey), "id": ctx.item_id(item),
        "createdDateTime": fmt_offset(item.created),
        "lastModifiedDateTime": fmt_offset(item.modified), "changeKey": item.changekey,
        "categories": props.strings(item, "Categories"),
        "receivedDateTime": fmt_offset(item.received), "sentDateTime": fmt_offset(item.received),
        "hasAttachments": any(not a.is_inline for a in item.attachments),
        "internetMessageId": item.text("InternetMessageId"),
        "subject": item.text("Subject") or item.text("DisplayName") or "",
        "bodyPreview": " ".join(preview.split())[:255],
        "importance": IMPORTANCE.get(item.text("Importance") or "Normal", "normal"),
        "parentFolderId": item.folder_id,
        "conversationId": "AAQk" + item.immutable_id[6:30],
        "isDeliveryReceiptRequested": False, "isReadReceiptRequested": False,
        "isRead": (read or "false").strip().lower() in ("true", "1"),
        "isDraft": bool(folder and folder.distinguished == "drafts"),
        "webLink": f"https://outlook.office365.com/owa/?ItemID={ctx.item_id(item)}",
        "inferenceClassification": "focused",
        "body": body,
        "sender": {"emailAddress": props.email_address(
            (sender if sender is not None else frm).find("{*}Mailbox"))}
        if (sender if sender is not None else frm) is not None else None,
        "from": {"emailAddress": props.email_address(frm.find("{*}Mailbox"))}
        if frm is not None else None,
        "toRecipients": props.recipients(item, "ToRecipients"),
        "ccRecipients": props.recipients(item, "CcRecipients"),
        "bccRecipients": props.recipients(item, "BccRecipients"),
        "replyTo": props.recipients(item, "ReplyTo"),
        "flag": {"flagStatus": flag_status},
    }


def attachment_json(att: Attachment, with_content: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.fileAttachment" if att.item is None
        else "#microsoft.graph.itemAttachment",
        "@odata.mediaContentType": att.content_type,
        "id": att.id, "lastModifiedDateTime": fmt_offset(att.last_modified), "name": att.name,
        "contentType": att.content_type, "size": att.size, "isInline": att.is_inline,
    }
    if att.item is None:
        data["contentId"] = att.content_id
        data["contentLocation"] = None
        if with_content:
            data["contentBytes"] = base64.b64encode(att.content or b"").decode()
    return data


def _expand_attachments(ctx: GraphContext, item: Item, name: str,
                        options: dict[str, str]) -> tuple[str, Any]:
    if name != "attachments":
        raise GraphError(400, "BadRequest", f"Parsing OData Select and Expand failed: Could "
                                            f"not find a property named '{name}'.")
    fields = parse_select(options.get("$select"))
    wants_content = fields is None or "contentbytes" in fields
    return "attachments", [project(attachment_json(a, wants_content), fields)
                           for a in item.attachments if not a.is_contact_photo]


def _received_filter(where: str | None) -> Any:
    if not where:
        return None
    match = RECEIVED_FILTER.match(where)
    if match is None:
        raise GraphError(400, "ErrorInvalidUrlQueryFilter",
                         "Only receivedDateTime ge/gt is supported on messages delta.")
    since = parse_dt(match.group(2))
    if since is None:
        raise bad_request(f"Invalid DateTimeOffset '{match.group(2)}'.", "ErrorInvalidUrlQuery")
    return (match.group(1).lower(), since)


def _message(ctx: GraphContext, message: str) -> Item:
    item = ctx.find_item(message)
    if not in_mail_folder(ctx, item):
        raise GraphError(404, "ErrorItemNotFound")
    return item


def _fragment(ctx: GraphContext) -> str:
    return f"users('{ctx.mailbox}')/messages/$entity"


def _shape(ctx: GraphContext, item: Item) -> dict[str, Any]:
    return items.shaped(ctx, item, to_json, _expand_attachments)


def apply_json(item: Item, data: dict[str, Any], draft: bool) -> str:
    """Apply a POST/PATCH body; returns the change kind ("read" for a read flag alone)."""
    for name, value in data.items():
        if name in READ_ONLY:
            continue
        if name not in WRITABLE:
            raise bad_request(f"The property '{name}' does not exist on type "
                              f"'microsoft.graph.message'.", "ErrorInvalidProperty")
        if name in ("toRecipients", "ccRecipients", "bccRecipients", "replyTo"):
            if not draft:
                raise bad_request("Recipients can be changed on drafts only.",
                                  "ErrorInvalidPropertyUpdateSentMessage")
            tag = {"toRecipients": "ToRecipients", "ccRecipients": "CcRecipients",
                   "bccRecipients": "BccRecipients", "replyTo": "ReplyTo"}[name]
            if not value:
                item.props.pop(tag, None)
                continue
            holder = t_el(tag)
            for spec in value:
                holder.append(props.mailbox_element("Mailbox", spec))
            item.props[tag] = holder
        elif name == "subject":
            props.set_text(item, "Subject", value)
        elif name == "internetMessageId":
            if not draft:
                raise bad_request("internetMessageId can be set on drafts only.",
                                  "ErrorInvalidPropertyUpdateSentMessage")
            props.set_text(item, "InternetMessageId", value)
        elif name == "body":
            props.set_body(item, value)
        elif name == "categories":
            props.set_strings(item, "Categories", value)
        elif name == "importance":
            reverse = {v: k for k, v in IMPORTANCE.items()}
            if value not in reverse:
                raise bad_request(f"Invalid importance '{value}'.", "ErrorInvalidProperty")
            props.set_text(item, "Importance", reverse[value])
        elif name == "isRead":
            if not isinstance(value, bool):
                raise bad_request("isRead must be a boolean.", "ErrorInvalidProperty")
            props.set_text(item, "IsRead", value)
        elif name == "flag":
            status = (value or {}).get("flagStatus", "notFlagged")
            reverse = {v: k for k, v in FLAG.items()}
            if status not in reverse:
                raise bad_request(f"Invalid flagStatus '{status}'.", "ErrorInvalidProperty")
            flag = t_el("Flag")
            sub(flag, T, "FlagStatus", reverse[status])
            item.props["Flag"] = flag
        elif name == "singleValueExtendedProperties":
            items.apply_extended(item, data)
    return "read" if set(data) == {"isRead"} else "update"


# --- routes --------------------------------------------------------------------------------
@route("GET", "mailFolders/{folder}/messages/delta", "messages.delta")
def delta(ctx: GraphContext, folder: str) -> GraphResponse:
    found = mail_folder(ctx, folder)

    def accepts(item: Item, where: str | None) -> bool:
        if not in_mail_folder(ctx, item):
            return False
        bound = _received_filter(where)
        if bound is None:
            return True
        return item.received >= bound[1] if bound[0] == "ge" else item.received > bound[1]

    def shape(ctx: GraphContext, item: Item, select: str | None,
              expand: str | None) -> dict[str, Any]:
        return items.shaped(ctx, item, to_json, _expand_attachments, select, expand,
                            from_query=False)

    _received_filter(ctx.request.query.get("$filter"))   # a bad filter fails the first page
    return folder_delta(ctx, found, f"mailFolders/{folder}/messages/delta", ODATA_TYPE,
                        accepts, shape)


@route("GET", "messages", "messages.list")
def list_all(ctx: GraphContext) -> GraphResponse:
    mbx = ctx.store.mailboxes[ctx.mailbox]
    chosen = [i for f in mbx.folders.values() if f.folder_class in MAIL_CLASSES
              for i in f.items.values()]
    return items.listing(ctx, chosen, to_json, "messages", f"users('{ctx.mailbox}')/messages",
                         _expand_attachments)


@route("GET", "mailFolders/{folder}/messages", "messages.list")
def list_in_folder(ctx: GraphContext, folder: str) -> GraphResponse:
    found = mail_folder(ctx, folder)
    return items.listing(ctx, list(found.items.values()), to_json,
                         f"mailFolders/{folder}/messages",
                         f"users('{ctx.mailbox}')/mailFolders('{found.id}')/messages",
                         _expand_attachments)


def _create(ctx: GraphContext, folder_ref: str) -> GraphResponse:
    folder = mail_folder(ctx, folder_ref)
    data = ctx.request.json()
    item = Item(id=ids.item_id(), tag="Message", folder_id=folder.id, mailbox=folder.mailbox)
    apply_json(item, data, draft=True)
    prepare_new(item, folder.mailbox)
    if "IsRead" not in item.props:
        props.set_text(item, "IsRead", True)    # a message saved by its owner is read
    item.size = 500 + len(props.body(item)["content"])
    ctx.store.add_item(folder, item)
    return items.entity(ctx, item, to_json, _fragment(ctx), _expand_attachments, status=201)


@route("POST", "messages", "messages.create")
def create_draft(ctx: GraphContext) -> GraphResponse:
    return _create(ctx, "drafts")


@route("POST", "mailFolders/{folder}/messages", "messages.create")
def create_in_folder(ctx: GraphContext, folder: str) -> GraphResponse:
    return _create(ctx, folder)


@route("GET", "messages/{message}", "messages.get")
@route("GET", "mailFolders/{folder}/messages/{message}", "messages.get")
def get(ctx: GraphContext, message: str, folder: str | None = None) -> GraphResponse:
    return items.entity(ctx, _message(ctx, message), to_json, _fragment(ctx),
                        _expand_attachments)


@route("PATCH", "messages/{message}", "messages.update")
@route("PATCH", "mailFolders/{folder}/messages/{message}", "messages.update")
def update(ctx: GraphContext, message: str, folder: str | None = None) -> GraphResponse:
    item = _message(ctx, message)
    items.check_if_match(ctx, item)
    parent = ctx.store.folders.get(item.folder_id)
    kind = apply_json(item, ctx.request.json(),
                      draft=bool(parent and parent.distinguished == "drafts"))
    ctx.store.updated(item, kind)
    return items.entity(ctx, item, to_json, _fragment(ctx), _expand_attachments)


@route("DELETE", "messages/{message}", "messages.delete")
@route("DELETE", "mailFolders/{folder}/messages/{message}", "messages.delete")
def delete(ctx: GraphContext, message: str, folder: str | None = None) -> GraphResponse:
    item = _message(ctx, message)
    items.check_if_match(ctx, item)
    items.soft_delete(ctx, item)
    return GraphResponse(204)


@route("GET", "messages/{message}/$value", "messages.value")
def value(ctx: GraphContext, message: str) -> GraphResponse:
    return GraphResponse(200, message_mime(_message(ctx, message)), content_type="text/plain")


# --- attachments ---------------------------------------------------------------------------
def _attachment(ctx: GraphContext, item: Item, attachment: str) -> Attachment:
    for att in item.attachments:
        if att.id == attachment and not att.is_contact_photo:
            return att
    raise GraphError(404, "ErrorItemNotFound", "The attachment was not found.")


@route("GET", "messages/{message}/attachments", "attachments.list")
def list_attachments(ctx: GraphContext, message: str) -> GraphResponse:
    item = _message(ctx, message)
    fields = parse_select(ctx.request.query.get("$select"))
    wants_content = fields is None or "contentbytes" in fields
    values = [project(attachment_json(a, wants_content), fields)
              for a in item.attachments if not a.is_contact_photo]
    return GraphResponse(200, {"@odata.context": ctx.context_url(
        f"users('{ctx.mailbox}')/messages('{ctx.item_id(item)}')/attachments"),
        "value": values})


@route("GET", "messages/{message}/attachments/{attachment}", "attachments.get")
def get_attachment(ctx: GraphContext, message: str, attachment: str) -> GraphResponse:
    item = _message(ctx, message)
    att = _attachment(ctx, item, attachment)
    fields = parse_select(ctx.request.query.get("$select"))
    data = project(attachment_json(att, fields is None or "contentbytes" in fields), fields)
    return GraphResponse(200, {"@odata.context": ctx.context_url(
        f"users('{ctx.mailbox}')/messages('{ctx.item_id(item)}')/attachments/$entity"),
        **data})


@route("GET", "messages/{message}/attachments/{attachment}/$value", "attachments.value")
def attachment_value(ctx: GraphContext, message: str, attachment: str) -> GraphResponse:
    att = _attachment(ctx, _message(ctx, message), attachment)
    if att.item is not None:
        # An item attachment's raw value is the attached item as MIME.
        return GraphResponse(200, message_mime(att.item), content_type="message/rfc822")
    # The stored bytes themselves: http.py writes them in chunks, unlocked and uncopied.
    return GraphResponse(200, att.content or b"", content_type=att.content_type)


@route("POST", "messages/{message}/attachments", "attachments.create")
def add_attachment(ctx: GraphContext, message: str) -> GraphResponse:
    item = _message(ctx, message)
    data = ctx.request.json()
    if data.get("@odata.type") != "#microsoft.graph.fileAttachment":
        raise bad_request("Only fileAttachment can be added by the simulator.",
                          "ErrorInvalidProperty")
    try:
        content = base64.b64decode(str(data.get("contentBytes") or ""), validate=True)
    except ValueError as exc:
        raise bad_request("contentBytes is not valid base64.", "ErrorInvalidProperty") from exc
    att = Attachment(id=ids.attachment_id(), name=str(data.get("name") or "attachment"),
                     content_type=str(data.get("contentType") or "application/octet-stream"),
                     content=content, is_inline=bool(data.get("isInline")),
                     content_id=data.get("contentId"))
    item.attachments.append(att)
    item.size += att.size
    ctx.store.attachments[att.id] = (item, att)
    ctx.store.updated(item)
    return GraphResponse(201, {"@odata.context": ctx.context_url(
        f"users('{ctx.mailbox}')/messages('{ctx.item_id(item)}')/attachments/$entity"),
        **attachment_json(att)})
