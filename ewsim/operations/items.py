"""CreateItem, GetItem, UpdateItem, DeleteItem, MoveItem: one response message per item."""

from __future__ import annotations

import copy
import uuid

from lxml import etree

from .. import allday, ids, limits, recurrence
from ..context import Context, folder_id_elements
from ..itemxml import (
    Shape,
    apply_props,
    delete_indexed,
    ext_key,
    field_element,
    item_ids_only,
    load_item,
    render_item,
)
from ..ns import M, T, local, mq, sub, t_el, tq
from ..soap import MessageError, error, response_root, success
from ..store import Folder, Item
from ..timeutil import fmt_dt, parse_dt
from . import operation

DEFAULT_FOLDER = {"Message": "drafts", "CalendarItem": "calendar", "Contact": "contacts",
                  "DistributionList": "contacts", "Task": "tasks"}


def _recipients(item: Item) -> list[str]:
    out: list[str] = []
    for name in ("ToRecipients", "CcRecipients", "BccRecipients", "RequiredAttendees",
                 "OptionalAttendees", "Resources"):
        el = item.props.get(name)
        if el is not None:
            out.extend(a.text.strip().lower() for a in el.iter(tq("EmailAddress")) if a.text)
    return out


def deliver_copy(ctx: Context, item: Item) -> None:
    """Mail sent to another simulated mailbox lands in its Inbox, like a real server."""
    store = ctx.store
    for address in _recipients(item):
        inbox = store.folder_by_distinguished(address, "inbox")
        if inbox is None or item.tag != "Message":
            continue
        copy_item = Item(id=ids.item_id(), tag=item.tag, folder_id=inbox.id, mailbox=address,
                         props={k: copy.deepcopy(v) for k, v in item.props.items()},
                         ext={k: copy.deepcopy(v) for k, v in item.ext.items()},
                         attachments=[a.copied() for a in item.attachments], size=item.size,
                         mime=item.mime)
        copy_item.props["IsRead"] = t_el("IsRead", "false")
        if "From" not in copy_item.props:
            frm = t_el("From")
            mbx = sub(frm, T, "Mailbox")
            sub(mbx, T, "EmailAddress", item.mailbox)
            sub(mbx, T, "RoutingType", "SMTP")
            copy_item.props["From"] = frm
        store.add_item(inbox, copy_item, new_mail=True)


def prepare_new(item: Item, owner: str) -> None:
    """Fill server-set properties that must be stable for the item's lifetime."""
    if item.tag == "CalendarItem" and "UID" not in item.props:
        item.props["UID"] = t_el("UID", uuid.uuid4().hex.upper())
    if item.tag == "Message" and "InternetMessageId" not in item.props:
        item.props["InternetMessageId"] = t_el("InternetMessageId",
                                               f"<{uuid.uuid4().hex}@ewsim.local>")
    if item.tag == "Message" and "From" not in item.props:
        frm = t_el("From")
        mbx = sub(frm, T, "Mailbox")
        sub(mbx, T, "EmailAddress", owner)
        sub(mbx, T, "RoutingType", "SMTP")
        item.props["From"] = frm


@operation("CreateItem")
def create_item(ctx: Context, req: etree._Element) -> etree._Element:
    disposition = req.get("MessageDisposition", "SaveOnly")
    invitations = req.get("SendMeetingInvitations")
    saved = folder_id_elements(req.find(mq("SavedItemFolderId")))
    root, msgs = response_root("CreateItem")
    items_el = req.find(mq("Items"))
    for spec in items_el if items_el is not None else []:
        if not isinstance(spec.tag, str):
            continue
        try:
            if saved:
                folder = ctx.folder(saved[0])
            else:
                dist = "sentitems" if disposition != "SaveOnly" else DEFAULT_FOLDER.get(
                    local(spec), "drafts")
                folder = ctx.store.folder_by_distinguished(ctx.mailbox, dist)
                if folder is None:
                    raise MessageError("ErrorFolderNotFound")
            limits.fit_element(local(spec), spec)   # cut or refused as Exchange does
            item = load_item(spec, folder.id, folder.mailbox)
            allday.snap_to_midnights(item)
            prepare_new(item, folder.mailbox)
            if invitations:
                item.meeting_requests_sent.append(invitations)
                ctx.server.sent_log.append({"operation": "CreateItem", "item_id": item.id,
                                            "send_meeting_invitations": invitations,
                                            "recipients": _recipients(item)})
            sending = disposition in ("SendOnly", "SendAndSaveCopy")
            if sending:
                item.props["IsRead"] = t_el("IsRead", "true")
                ctx.server.sent_log.append({"operation": "CreateItem", "disposition": disposition,
                                            "subject": item.text("Subject"),
                                            "recipients": _recipients(item)})
                deliver_copy(ctx, item)
            if disposition != "SendOnly":
                ctx.store.add_item(folder, item)
        except MessageError as exc:
            error(msgs, "CreateItem", exc.code, exc.message)
            continue
        msg = success(msgs, "CreateItem")
        out = sub(msg, M, "Items")
        if disposition == "SaveOnly":   # Send*: empty Items => exchangelib returns True
            el = item_ids_only(item)
            if item.attachments:
                atts = sub(el, T, "Attachments")
                for att in item.attachments:
                    meta = etree.SubElement(atts, tq("FileAttachment" if att.item is None
                                                     else "ItemAttachment"))
                    etree.SubElement(meta, tq("AttachmentId"), Id=att.id, RootItemId=item.id,
                                     RootItemChangeKey=item.changekey)
            out.append(el)
    return root


def resolve(ctx: Context, id_el: etree._Element) -> tuple[Item, int | None]:
    """Map ItemId / OccurrenceItemId / RecurringMasterItemId to (item, instance index).

    An index means "instance `index` of the recurring master `item`" (occurrence or
    exception); the ItemId of an instance encodes master id + index (`ids.occurrence_id`),
    which is why an exception keeps the id its occurrence had (exchangelib's save()
    rejects an UpdateItem answer whose id differs from the ItemId it sent).
    """
    kind = local(id_el)
    if kind == "OccurrenceItemId":
        master = ctx.item(id_el.get("RecurringMasterId", ""))
        try:
            index = int(id_el.get("InstanceIndex", "0"))
        except ValueError:
            index = 0
        if recurrence.slot(master, index) is None:
            raise MessageError("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange")
        if index in master.deleted_occurrences:
            raise MessageError("ErrorCalendarOccurrenceIsDeletedFromRecurrence")
        return master, index
    if kind == "RecurringMasterItemId":
        occ = ids.parse_occurrence_id(id_el.get("OccurrenceId", ""))
        if occ is None:
            ctx.item(id_el.get("OccurrenceId", ""))   # ErrorItemNotFound if unknown
            raise MessageError("ErrorCalendarCannotUseIdForOccurrenceId")
        return ctx.item(occ[0]), None
    raw = id_el.get("Id", "")
    occ = ids.parse_occurrence_id(raw)
    if occ is not None:
        master = ctx.item(occ[0])
        if recurrence.occurrence(master, occ[1]) is None:
            raise MessageError("ErrorItemNotFound")
        return master, occ[1]
    return ctx.item(raw), None


def render_occurrence(ctx: Context, master: Item, index: int, shape: Shape,
                      original: recurrence.Times | None = None) -> etree._Element:
    """An occurrence or exception as its own CalendarItem (own ItemId, no Recurrence)."""
    if original is None:
        original = recurrence.slot(master, index)
    instance = recurrence.instance_item(master, index, original)
    kind = "Exception" if index in master.exceptions else "Occurrence"
    overrides: dict[str, etree._Element | None] = {
        "Recurrence": None,
        "CalendarItemType": t_el("CalendarItemType", kind),
        "IsRecurring": t_el("IsRecurring", "true"),
    }
    if original is not None:
        # Both stay the slot's start when an exception is moved: that is how clients
        # (and iCalendar RECURRENCE-ID) match an exception to the occurrence it replaces.
        overrides["OriginalStart"] = t_el("OriginalStart", fmt_dt(original[0]))
        overrides["RecurrenceId"] = t_el("RecurrenceId", fmt_dt(original[0]))
    return render_item(ctx.store, instance, shape, overrides)


@operation("GetItem")
def get_item(ctx: Context, req: etree._Element) -> etree._Element:
    shape = Shape.parse(req.find(mq("ItemShape")))
    root, msgs = response_root("GetItem")
    for id_el in req.find(mq("ItemIds")):
        if not isinstance(id_el.tag, str):
            continue
        try:
            item, index = resolve(ctx, id_el)
        except MessageError as exc:
            error(msgs, "GetItem", exc.code, exc.message)
            continue
        msg = success(msgs, "GetItem")
        out = sub(msg, M, "Items")
        if index is None:
            out.append(render_item(ctx.store, item, shape))
        else:
            out.append(render_occurrence(ctx, item, index, shape))
    return root


def _path_name(upd: etree._Element) -> str | None:
    path = upd[0]
    return field_element(path.get("FieldURI", "")) if local(path) == "FieldURI" else None


def _apply_update(item: Item, upd: etree._Element) -> str:
    """Apply one Set/Append/DeleteItemField; return the change kind it represents."""
    kind = local(upd)
    path = upd[0]
    path_kind = local(path)
    name = field_element(path.get("FieldURI", "")) if path_kind != "ExtendedFieldURI" else None
    if kind == "DeleteItemField":
        if path_kind == "ExtendedFieldURI":
            item.ext.pop(ext_key(path), None)
        elif path_kind == "IndexedFieldURI":
            delete_indexed(item, path.get("FieldURI", ""), path.get("FieldIndex", ""))
        elif name:
            item.props.pop(name, None)
        return "update"
    holder = upd[1]
    if kind == "AppendToItemField" and name and name in item.props:
        for child in holder:
            current = item.props[name]
            if len(child):
                current.extend(copy.deepcopy(list(child)))
            else:
                current.text = (current.text or "") + (child.text or "")
        return "update"
    if path_kind == "IndexedFieldURI" or path_kind == "ExtendedFieldURI" or name:
        apply_props(item, holder)
    return "read" if name == "IsRead" else "update"


def _update_instance(ctx: Context, master: Item, index: int, changekey: str | None,
                     resolution: str, updates: list[etree._Element]) -> Item:
    """UpdateItem on an occurrence/exception: it becomes (or stays) an exception.

    The changes are applied to a scratch copy of the instance, validated like Exchange
    does, and stored as overrides on the master. The master gets a new ChangeKey and a
    change-log "update": exceptions are not folder items, so SyncFolderItems reports
    the master as updated.
    """
    instance = recurrence.instance_item(master, index)
    if changekey and changekey != instance.changekey and resolution == "NeverOverwrite":
        raise MessageError("ErrorIrresolvableConflict")
    before = (parse_dt(instance.text("Start")), parse_dt(instance.text("End")))
    for upd in updates:
        if _path_name(upd) in recurrence.SERIES_ONLY:
            if local(upd) == "DeleteItemField":
                continue   # exchangelib's full save() of an exception clears Recurrence
            raise MessageError("ErrorInvalidPropertySet",
                               "Recurrence can only be set on the recurring master.")
        _apply_update(instance, upd)
    allday.snap_to_midnights(instance)
    start, end = parse_dt(instance.text("Start")), parse_dt(instance.text("End"))
    if start is None or end is None:
        raise MessageError("ErrorInvalidPropertySet", "An occurrence needs Start and End.")
    if end < start:
        raise MessageError("ErrorCalendarEndDateIsEarlierThanStartDate")
    if (start, end) != before and recurrence.crosses_boundary(master, index, start):
        raise MessageError("ErrorOccurrenceCrossingBoundary")
    # Store canonical UTC times: exception times are compared and re-rendered often.
    instance.props["Start"] = t_el("Start", fmt_dt(start))
    instance.props["End"] = t_el("End", fmt_dt(end))
    exc = recurrence.save_exception(master, index, instance)
    ctx.store.updated(master)
    instance.changekey = exc.changekey
    return instance


@operation("UpdateItem")
def update_item(ctx: Context, req: etree._Element) -> etree._Element:
    resolution = req.get("ConflictResolution", "AutoResolve")
    invitations = req.get("SendMeetingInvitationsOrCancellations")
    root, msgs = response_root("UpdateItem")
    for change in req.find(mq("ItemChanges")):
        if not isinstance(change.tag, str):
            continue
        try:
            id_el = change[0]
            item, index = resolve(ctx, id_el)
            ck = id_el.get("ChangeKey")
            updates = [u for u in change.find(tq("Updates")) if isinstance(u.tag, str)]
            limits.fit_updates(item.tag, updates)
            if index is not None:
                result = _update_instance(ctx, item, index, ck, resolution, updates)
            else:
                if ck and ck != item.changekey and resolution == "NeverOverwrite":
                    raise MessageError("ErrorIrresolvableConflict")
                series = recurrence.signature(item) if item.tag == "CalendarItem" else None
                kinds = {_apply_update(item, upd) for upd in updates}
                allday.snap_to_midnights(item)
                if series is not None and recurrence.signature(item) != series:
                    # Exchange discards every exception (modified and deleted occurrences)
                    # when the pattern or the series' time changes.
                    recurrence.reset_exceptions(item)
                ctx.store.updated(item, "update" if "update" in kinds else "read")
                result = item
            if invitations and item.tag == "CalendarItem":
                item.meeting_requests_sent.append(invitations)
                ctx.server.sent_log.append({"operation": "UpdateItem", "item_id": result.id,
                                            "send_meeting_invitations_or_cancellations":
                                            invitations})
        except MessageError as exc:
            error(msgs, "UpdateItem", exc.code, exc.message)
            continue
        msg = success(msgs, "UpdateItem")
        sub(msg, M, "Items").append(item_ids_only(result))
        cr = sub(msg, M, "ConflictResults")
        sub(cr, T, "Count", "0")
    return root


def _deleted_items(ctx: Context, item: Item) -> Folder:
    trash = ctx.store.folder_by_distinguished(item.mailbox, "deleteditems")
    if trash is None:
        raise MessageError("ErrorFolderNotFound")
    return trash


@operation("DeleteItem")
def delete_item(ctx: Context, req: etree._Element) -> etree._Element:
    delete_type = req.get("DeleteType", "HardDelete")
    cancellations = req.get("SendMeetingCancellations")
    root, msgs = response_root("DeleteItem")
    for id_el in req.find(mq("ItemIds")):
        if not isinstance(id_el.tag, str):
            continue
        try:
            # Exchange refuses a ChangeKey it cannot parse (a well-formed one is not compared).
            changekey = id_el.get("ChangeKey")
            if changekey is not None and not ids.change_key_parses(changekey):
                raise MessageError("ErrorInvalidChangeKey")
            item, index = resolve(ctx, id_el)
            if index is not None:
                # Deleting an occurrence or exception records its slot on the master
                # (notes §3.4 DeleteItem); an exception's overrides go with it.
                item.exceptions.pop(index, None)
                item.deleted_occurrences.add(index)
                ctx.store.updated(item)
            else:
                if cancellations and item.tag == "CalendarItem":
                    ctx.server.sent_log.append({"operation": "DeleteItem", "item_id": item.id,
                                                "send_meeting_cancellations": cancellations})
                trash = ctx.store.folder_by_distinguished(item.mailbox, "deleteditems")
                if delete_type == "MoveToDeletedItems" and item.folder_id != (
                        trash.id if trash else None):
                    ctx.store.move_item(item, _deleted_items(ctx, item))
                else:
                    ctx.store.remove_item(item)
        except MessageError as exc:
            error(msgs, "DeleteItem", exc.code, exc.message)
            continue
        success(msgs, "DeleteItem")
    return root


@operation("MoveItem")
def move_item(ctx: Context, req: etree._Element) -> etree._Element:
    root, msgs = response_root("MoveItem")
    target_el = folder_id_elements(req.find(mq("ToFolderId")))
    for id_el in req.find(mq("ItemIds")):
        if not isinstance(id_el.tag, str):
            continue
        try:
            target = ctx.folder(target_el[0])
            item, index = resolve(ctx, id_el)
            if index is not None:
                raise MessageError("ErrorCalendarCannotMoveOrCopyOccurrence")
            if target.mailbox != item.mailbox:
                raise MessageError("ErrorInvalidOperation", "Cross-mailbox moves not simulated.")
            ctx.store.move_item(item, target)
        except MessageError as exc:
            error(msgs, "MoveItem", exc.code, exc.message)
            continue
        msg = success(msgs, "MoveItem")
        sub(msg, M, "Items").append(item_ids_only(item))
    return root

