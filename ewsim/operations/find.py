"""FindItem: IndexedPageItemView paging with restrictions/sort, and CalendarView expansion."""

from __future__ import annotations

import datetime as dt

from lxml import etree

from .. import recurrence
from ..context import Context, folder_id_elements
from ..itemxml import Shape, render_item
from ..ns import M, T, mq, sub
from ..restrictions import matches, sort_items
from ..soap import MessageError, error, response_root, success
from ..store import Item
from ..timeutil import parse_dt
from . import operation
from .items import render_occurrence

MAX_VIEW_RANGE = dt.timedelta(days=365 * 2 + 1)   # Exchange: ErrorCalendarViewRangeTooBig
# A CalendarView expands occurrences; Exchange filters and sorts none of them.
CALENDAR_VIEW_ALONE = "Restrictions and sort order may not be specified for a CalendarView."


def _calendar_view(ctx: Context, items: list[Item], view: etree._Element, shape: Shape,
                   msg: etree._Element) -> None:
    start = parse_dt(view.get("StartDate"))
    end = parse_dt(view.get("EndDate"))
    if start is None or end is None or end < start:
        raise MessageError("ErrorInvalidRequest", "Invalid CalendarView range.")
    if end - start > MAX_VIEW_RANGE:
        raise MessageError("ErrorCalendarViewRangeTooBig")
    rows: list[tuple[dt.datetime, Item, int | None, recurrence.Times | None]] = []
    for item in items:
        if item.tag != "CalendarItem":
            continue
        if "Recurrence" in item.props:
            # Instances at their effective times: an exception moved into the window shows
            # up, one moved out of it does not (sorted below with everything else).
            rows.extend((s, item, idx, original) for idx, s, _e, original
                        in recurrence.in_window(item, start, end))
            continue
        i_start, i_end = parse_dt(item.text("Start")), parse_dt(item.text("End"))
        # Items ending exactly at `start` are included (exchangelib view() docstring).
        if i_start and i_end and i_start < end and i_end >= start:
            rows.append((i_start, item, None, None))
    rows.sort(key=lambda r: r[0])
    limit = int(view.get("MaxEntriesReturned", "0") or 0) or len(rows)
    page = rows[:limit]
    rf = sub(msg, M, "RootFolder", TotalItemsInView=str(len(rows)),
             IncludesLastItemInRange="true" if len(page) == len(rows) else "false")
    out = sub(rf, T, "Items")
    for _s, item, idx, original in page:
        if idx is None:
            out.append(render_item(ctx.store, item, shape))
        else:
            out.append(render_occurrence(ctx, item, idx, shape, original))


@operation("FindItem")
def find_item(ctx: Context, req: etree._Element) -> etree._Element:
    shape = Shape.parse(req.find(mq("ItemShape")))
    restriction = req.find(mq("Restriction"))
    order = req.find(mq("SortOrder"))
    view = req.find(mq("IndexedPageItemView"))
    cal_view = req.find(mq("CalendarView"))
    root, msgs = response_root("FindItem")
    for fid in folder_id_elements(req.find(mq("ParentFolderIds"))):
        try:
            folder = ctx.folder(fid)
            items = list(folder.items.values())
            if cal_view is not None:
                if restriction is not None or order is not None:
                    raise MessageError("ErrorInvalidOperation", CALENDAR_VIEW_ALONE)
                msg = success(msgs, "FindItem")
                _calendar_view(ctx, items, cal_view, shape, msg)
                continue
            if restriction is not None:
                items = [i for i in items if matches(ctx.store, i, restriction)]
            items = sort_items(ctx.store, items, order)
        except MessageError as exc:
            error(msgs, "FindItem", exc.code, exc.message)
            continue
        total = len(items)
        offset, limit = 0, total
        if view is not None:
            offset = int(view.get("Offset", "0"))
            limit = int(view.get("MaxEntriesReturned", str(total)))
            if view.get("BasePoint") == "End":
                offset = max(0, total - offset - limit)
        page = items[offset:offset + limit]
        msg = success(msgs, "FindItem")
        # Paging attributes always present (exchangelib needs them, notes §3.4).
        rf = sub(msg, M, "RootFolder", IndexedPagingOffset=str(offset + len(page)),
                 TotalItemsInView=str(total),
                 IncludesLastItemInRange="true" if offset + len(page) >= total else "false")
        out = sub(rf, T, "Items")
        for item in page:
            out.append(render_item(ctx.store, item, shape))
    return root
