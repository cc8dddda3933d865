"""CopyItem (learn.microsoft.com/exchange/client-developer/web-service-reference/
copyitem-operation): a new item with a new ItemId, ChangeKey and attachment ids and the same
content, in the target folder. The target's change log gets a create (SyncFolderItems, Graph
delta and Graph notifications see a new item); EWS subscriptions get a CopiedEvent naming the
original. Occurrences cannot be copied (ErrorCalendarCannotMoveOrCopyOccurrence, as MoveItem).
A calendar item's copy gets a UID of its own, so it is a meeting of its own and does not share
the original's PidLidCleanGlobalObjectId.
"""

from __future__ import annotations

import copy
import uuid

from lxml import etree

from .. import ids
from ..context import Context, folder_id_elements
from ..itemxml import item_ids_only
from ..ns import M, mq, parse_bool, sub, t_el
from ..soap import MessageError, error, response_root, success
from ..store import Attachment, Item
from . import operation
from .items import resolve


def _copy_attachment(att: Attachment) -> Attachment:
    return Attachment(id=ids.attachment_id(), name=att.name, content_type=att.content_type,
                      content=att.content, item=duplicate(att.item) if att.item else None,
                      is_inline=att.is_inline, is_contact_photo=att.is_contact_photo,
                      content_id=att.content_id, last_modified=att.last_modified)


def duplicate(item: Item) -> Item:
    """The item's content under new identities (not yet in any folder)."""
    twin = Item(id=ids.item_id(), tag=item.tag, folder_id=item.folder_id, mailbox=item.mailbox,
                props={k: copy.deepcopy(v) for k, v in item.props.items()},
                ext={k: copy.deepcopy(v) for k, v in item.ext.items()},
                attachments=[_copy_attachment(a) for a in item.attachments],
                received=item.received, mime=item.mime, size=item.size,
                deleted_occurrences=set(item.deleted_occurrences),
                exceptions=copy.deepcopy(item.exceptions))
    if item.tag == "CalendarItem" and "UID" in twin.props:
        twin.props["UID"] = t_el("UID", uuid.uuid4().hex.upper())
    return twin


@operation("CopyItem")
def copy_item(ctx: Context, req: etree._Element) -> etree._Element:
    root, msgs = response_root("CopyItem")
    target_el = folder_id_elements(req.find(mq("ToFolderId")))
    # ReturnNewItemIds="false": Exchange answers without the new ids.
    return_ids = parse_bool(req.findtext(mq("ReturnNewItemIds")) or "true")
    for id_el in req.find(mq("ItemIds")):
        if not isinstance(id_el.tag, str):
            continue
        try:
            target = ctx.folder(target_el[0])
            item, index = resolve(ctx, id_el)
            if index is not None:
                raise MessageError("ErrorCalendarCannotMoveOrCopyOccurrence")
            if target.mailbox != item.mailbox:
                raise MessageError("ErrorInvalidOperation", "Cross-mailbox copies not simulated.")
            twin = duplicate(item)
            with ctx.store.notifications.copying(item, twin):
                ctx.store.add_item(target, twin)
        except MessageError as exc:
            error(msgs, "CopyItem", exc.code, exc.message)
            continue
        msg = success(msgs, "CopyItem")
        items = sub(msg, M, "Items")
        if return_ids:
            items.append(item_ids_only(twin))
    return root
