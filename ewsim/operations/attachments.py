"""CreateAttachment, GetAttachment (streamed for file content), DeleteAttachment."""

from __future__ import annotations

from lxml import etree

from ..context import Context
from ..itemxml import Shape, attachment_meta, load_attachment, render_item
from ..ns import M, T, mq, sub, tq
from ..soap import MessageError, error, response_root, success
from ..store import Attachment, Item
from . import operation


class StreamedContent:
    """A placeholder for attachment bytes the server writes as base64 in chunks.

    The marker is valid base64 so the response still validates against the schema.
    """

    def __init__(self, index: int, content: bytes) -> None:
        self.marker = f"RVdTSU1DT05URU5U{index:08d}"
        self.content = content


def holder_of(root: Item, att: Attachment) -> Item:
    """The item `att` is directly attached to: `root`, or an item attached within it."""
    if att in root.attachments:
        return root
    for outer in root.all_attachments():
        if outer.item is not None and att in outer.item.attachments:
            return outer.item
    return root


@operation("CreateAttachment")
def create_attachment(ctx: Context, req: etree._Element) -> etree._Element:
    root, msgs = response_root("CreateAttachment")
    parent_el = req.find(mq("ParentItemId"))
    atts_el = req.find(mq("Attachments"))
    specs = [a for a in (atts_el if atts_el is not None else []) if isinstance(a.tag, str)]
    try:
        parent = ctx.item(parent_el.get("Id", "") if parent_el is not None else "")
    except MessageError as exc:
        for _ in specs:
            error(msgs, "CreateAttachment", exc.code, exc.message)
        return root
    created: list[Attachment] = []
    for spec in specs:
        att = load_attachment(spec)
        parent.attachments.append(att)
        parent.size += att.size
        ctx.store.attachments[att.id] = (parent, att)
        if att.item is not None:   # an attached item's own attachments have ids of their own
            for inner in att.item.all_attachments():
                ctx.store.attachments[inner.id] = (parent, inner)
        created.append(att)
    # Attachments change the parent's ChangeKey and count as an update for sync.
    if created:
        parent.mime = None   # the MIME it came with lacks them: made from the store instead
    ctx.store.updated(parent)
    for att in created:
        msg = success(msgs, "CreateAttachment")
        meta = etree.SubElement(sub(msg, M, "Attachments"),
                                tq("FileAttachment" if att.item is None else "ItemAttachment"))
        etree.SubElement(meta, tq("AttachmentId"), Id=att.id, RootItemId=parent.id,
                         RootItemChangeKey=parent.changekey)
    return root


@operation("GetAttachment")
def get_attachment(ctx: Context, req: etree._Element) -> tuple[etree._Element, list]:
    shape = Shape.parse(req.find(mq("AttachmentShape")))
    if not shape.fields and not shape.ext:
        shape.base = "AllProperties"
    root, msgs = response_root("GetAttachment")
    streams: list[StreamedContent] = []
    # Several ids in one request, as Exchange takes them: a response message each, in order,
    # an id not found (or in a mailbox not open to the caller) an error of its own.
    ids = [el.get("Id", "") for el in req.find(mq("AttachmentIds")) if isinstance(el.tag, str)]
    if ctx.server is not None:
        ctx.server.ids_asked["GetAttachment"] += len(ids)
    for attachment_id in ids:
        found = ctx.store.attachments.get(attachment_id)
        if found is None or not ctx.may_open(found[0].mailbox):
            error(msgs, "GetAttachment", "ErrorItemNotFound")
            continue
        _item, att = found
        msg = success(msgs, "GetAttachment")
        meta = attachment_meta(att)
        if att.item is None:
            stream = StreamedContent(len(streams), att.content or b"")
            streams.append(stream)
            sub(meta, T, "Content", stream.marker)
        else:
            meta.append(render_item(ctx.store, att.item, shape))
        sub(msg, M, "Attachments").append(meta)
    return root, streams


@operation("DeleteAttachment")
def delete_attachment(ctx: Context, req: etree._Element) -> etree._Element:
    root, msgs = response_root("DeleteAttachment")
    for id_el in req.find(mq("AttachmentIds")):
        if not isinstance(id_el.tag, str):
            continue
        found = ctx.store.attachments.get(id_el.get("Id", ""))
        if found is None or not ctx.may_open(found[0].mailbox):
            error(msgs, "DeleteAttachment", "ErrorItemNotFound")
            continue
        parent, att = found
        holder = holder_of(parent, att)
        holder.attachments.remove(att)
        holder.size = max(0, holder.size - att.size)
        if holder is not parent:
            parent.size = max(0, parent.size - att.size)
        holder.mime = parent.mime = None   # made from the store instead, without it
        del ctx.store.attachments[att.id]
        if att.item is not None:
            for inner in att.item.all_attachments():
                ctx.store.attachments.pop(inner.id, None)
        ctx.store.updated(parent)
        msg = success(msgs, "DeleteAttachment")
        etree.SubElement(msg, mq("RootItemId"), RootItemId=parent.id,
                         RootItemChangeKey=parent.changekey)
    return root

