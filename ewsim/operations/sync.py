"""SyncFolderItems: net changes since an opaque state, paged by MaxChangesReturned."""

from __future__ import annotations

import base64
import gzip
import json
from itertools import islice

from lxml import etree

from ..changelog import net_changes
from ..context import Context, folder_id_elements
from ..itemxml import Shape, render_item
from ..ns import M, T, mq, sub, tq
from ..soap import MessageError, error, response_root, success
from ..store import Folder
from . import operation

MAX_CHANGES = 512   # Exchange's documented cap per call


def encode_state(folder: Folder, seq: int) -> str:
    # Real states are opaque gzip blobs ("H4sI…"); mimic that so clients treat them as TEXT.
    raw = json.dumps({"f": folder.id, "s": seq}).encode()
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode()


def decode_state(value: str, folder: Folder) -> int:
    try:
        data = json.loads(gzip.decompress(base64.b64decode(value, validate=True)))
        if data["f"] != folder.id:
            raise ValueError("state of another folder")
        return int(data["s"])
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise MessageError("ErrorInvalidSyncStateData") from exc


def _invalid_state(msgs: etree._Element, code: str = "ErrorInvalidSyncStateData",
                   text: str | None = None) -> None:
    # SyncState + IncludesLastItemInRange are required or exchangelib dies (notes §3.4).
    msg = error(msgs, "SyncFolderItems", code, text)
    sub(msg, M, "SyncState")
    sub(msg, M, "IncludesLastItemInRange", "true")


@operation("SyncFolderItems")
def sync_folder_items(ctx: Context, req: etree._Element) -> etree._Element:
    shape = Shape.parse(req.find(mq("ItemShape")))
    root, msgs = response_root("SyncFolderItems")
    try:
        folder = ctx.folder(folder_id_elements(req.find(mq("SyncFolderId")))[0])
    except MessageError as exc:
        _invalid_state(msgs, exc.code, exc.message)
        return root
    state = (req.findtext(mq("SyncState")) or "").strip()
    try:
        since = decode_state(state, folder) if state else 0
    except MessageError:
        _invalid_state(msgs)
        return root
    ignore = {i.get("Id") for i in req.iter(tq("ItemId"))
              if i.getparent() is not None and i.getparent().tag == mq("Ignore")}
    limit = min(int(req.findtext(mq("MaxChangesReturned")) or MAX_CHANGES), MAX_CHANGES)
    # One change beyond the page tells whether it is the last; the rest is never collapsed.
    changes = list(islice((c for c in net_changes(folder, since) if c[1] not in ignore),
                          limit + 1))
    page = changes[:limit]
    complete = len(page) == len(changes)
    mbx = ctx.store.mailboxes[folder.mailbox]
    new_seq = mbx.seq if complete else page[-1][0]
    msg = success(msgs, "SyncFolderItems")
    sub(msg, M, "SyncState", encode_state(folder, new_seq))
    sub(msg, M, "IncludesLastItemInRange", "true" if complete else "false")
    out = sub(msg, M, "Changes")
    for _seq, item_id, kind in page:
        if kind == "delete":
            el = sub(out, T, "Delete")
            etree.SubElement(el, tq("ItemId"), Id=item_id)
            continue
        item = folder.items[item_id]
        if kind == "read":
            el = sub(out, T, "ReadFlagChange")
            etree.SubElement(el, tq("ItemId"), Id=item.id, ChangeKey=item.changekey)
            is_read = item.text("IsRead") or "false"
            sub(el, T, "IsRead", "true" if is_read.strip() in ("1", "true") else "false")
            continue
        el = sub(out, T, "Create" if kind == "create" else "Update")
        el.append(render_item(ctx.store, item, shape))
    return root
