"""SyncFolderItems: net changes since an opaque state, paged by MaxChangesReturned."""

from __future__ import annotations

import base64
import bisect
import gzip
import json

from lxml import etree

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


def net_changes(folder: Folder, since: int) -> list[tuple[int, str, str]]:
    """Collapse the log after `since` into one net change per item, ordered by last change.

    create+update => create, create+delete => nothing, update+read => update,
    read only => read flag change, anything+delete of a pre-existing item => delete.
    """
    start = bisect.bisect_right(folder.log, since, key=lambda e: e[0])
    summary: dict[str, list] = {}
    for seq, item_id, kind in folder.log[start:]:
        entry = summary.get(item_id)
        if entry is None:
            summary[item_id] = [kind, seq, {kind}]
        else:
            entry[1] = seq
            entry[2].add(kind)
    out: list[tuple[int, str, str]] = []
    for item_id, (first, last, kinds) in summary.items():
        exists = item_id in folder.items
        if first == "create":
            if exists:
                out.append((last, item_id, "create"))
        elif not exists:
            out.append((last, item_id, "delete"))
        elif "update" in kinds or "create" in kinds:
            out.append((last, item_id, "update"))
        else:
            out.append((last, item_id, "read"))
    out.sort()
    return out


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
    changes = [c for c in net_changes(folder, since) if c[1] not in ignore]
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
