"""CreateAttachment, GetAttachment (streamed for file content), DeleteAttachment."""

from __future__ import annotations

from lxml import etree

from ..context import Context
from ..itemxml import Shape, attachment_meta, load_attachment, render_item
from ..ns import M, T, mq, sub, tq
from ..soap import MessageError, error, response_root, success
from ..store import Attachment
from . import operation


class StreamedContent:
    """A placeholder for attachment bytes the server writes as base64 in chunks.

    The marker is valid base64 so the response still validates against the schema.
    """

    def __init__(self, index: int, content: bytes) -> None:
        self.marker = f"RVdTSU1DT05URU5U{index:08d}"
        self.content = content


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
        created.append(att)
    # Attachments change the parent's ChangeKey and count as an update for sync.
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
        parent.attachments.remove(att)
        parent.size = max(0, parent.size - att.size)
        del ctx.store.attachments[att.id]
        ctx.store.updated(parent)
        msg = success(msgs, "DeleteAttachment")
        etree.SubElement(msg, mq("RootItemId"), RootItemId=parent.id,
                         RootItemChangeKey=parent.changekey)
    return root

