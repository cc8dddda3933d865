"""Recurring series with exceptions, through unmodified exchangelib over real HTTP.

A sync product syncs "series with their exceptions": it must see a modified occurrence
as an exception (own id, OriginalStart, listed on the master) wherever it was moved,
and see the master as changed in SyncFolderItems.
"""

from __future__ import annotations

import datetime as dt

import pytest
from exchangelib import UTC, CalendarItem, EWSDateTime
from exchangelib.errors import (
    ErrorCalendarEndDateIsEarlierThanStartDate,
    ErrorCalendarOccurrenceIsDeletedFromRecurrence,
    ErrorInvalidPropertySet,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
    ErrorOccurrenceCrossingBoundary,
)
from exchangelib.recurrence import Recurrence, WeeklyPattern

from .conftest import TZ

HOUR = dt.timedelta(hours=1)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> EWSDateTime:
    return EWSDateTime(year, month, day, hour, minute, tzinfo=TZ)


def _weekly(account, start: EWSDateTime, number: int = 5, subject: str = "Weekly",
            **kw) -> CalendarItem:
    ev = CalendarItem(account=account, folder=account.calendar, subject=subject, start=start,
                      end=start + HOUR, location="Room 1",
                      recurrence=Recurrence(pattern=WeeklyPattern(interval=1,
                                                                  weekdays=[start.isoweekday()]),
                                            start=start.date(), number=number), **kw)
    ev.save()
    return ev


def _view(account, start: EWSDateTime, end: EWSDateTime) -> list[CalendarItem]:
    items = list(account.calendar.view(start=start, end=end, max_items=100))
    return sorted(items, key=lambda i: i.start)


def _refreshed(item: CalendarItem) -> CalendarItem:
    item.refresh()
    return item


def test_modifying_one_occurrence_makes_an_exception_listed_on_the_master(account):
    master = _weekly(account, local(2025, 1, 6, 10))          # Mondays 6.1. .. 3.2.
    old_master_ck = master.changekey
    occ = master.occurrence(2)                                # Monday 13.1.
    occ.subject = "Moved to Tuesday"
    occ.start, occ.end = local(2025, 1, 14, 14), local(2025, 1, 14, 15)
    occ.save(update_fields=["subject", "start", "end"])
    assert occ.id not in (None, master.id)

    view = _view(account, local(2025, 1, 1), local(2025, 2, 28))
    assert [(i.subject, i.type, i.start.astimezone(TZ)) for i in view] == [
        ("Weekly", "Occurrence", local(2025, 1, 6, 10)),
        ("Moved to Tuesday", "Exception", local(2025, 1, 14, 14)),
        ("Weekly", "Occurrence", local(2025, 1, 20, 10)),
        ("Weekly", "Occurrence", local(2025, 1, 27, 10)),
        ("Weekly", "Occurrence", local(2025, 2, 3, 10)),
    ]
    assert view[1].id == occ.id and view[1].location == "Room 1"   # untouched fields inherited

    master = account.calendar.get(id=master.id)
    assert master.type == "RecurringMaster" and master.changekey != old_master_ck
    (modified,) = master.modified_occurrences
    assert modified.id == occ.id
    assert modified.start == local(2025, 1, 14, 14) and modified.end == local(2025, 1, 14, 15)
    assert modified.original_start == local(2025, 1, 13, 10)
    assert master.deleted_occurrences is None
    assert master.first_occurrence.start == local(2025, 1, 6, 10)
    assert master.last_occurrence.original_start == local(2025, 2, 3, 10)


def test_an_exception_keeps_its_own_id_and_can_be_updated_again(account):
    master = _weekly(account, local(2025, 1, 6, 10), crm_id="CRM-S")
    occ = master.occurrence(3)
    occ.subject = "Special"
    occ.save(update_fields=["subject"])

    exc = account.calendar.get(id=occ.id)                     # GetItem on the exception's ItemId
    assert exc.id == occ.id and exc.changekey == occ.changekey
    assert exc.type == "Exception" and exc.subject == "Special"
    assert exc.is_recurring is True and exc.recurrence is None
    assert exc.uid == _refreshed(master).uid
    assert exc.original_start == exc.recurrence_id == local(2025, 1, 20, 10)
    assert exc.start == local(2025, 1, 20, 10)                # subject-only: time unchanged
    assert exc.crm_id == "CRM-S"                              # extended properties inherited

    first_ck = exc.changekey
    exc.location, exc.crm_id = "Room 9", "CRM-E"
    exc.save(update_fields=["location", "crm_id"])            # UpdateItem on the exception id
    assert exc.id == occ.id and exc.changekey != first_ck
    again = _refreshed(master.occurrence(3))                  # same instance by index
    assert (again.id, again.subject, again.location, again.crm_id) == (
        occ.id, "Special", "Room 9", "CRM-E")
    assert _refreshed(master).crm_id == "CRM-S"               # the master is untouched

    again.body = "Full save"
    again.save()                                              # full save of an exception
    master.refresh()
    assert [m.id for m in master.modified_occurrences] == [occ.id]
    assert master.uid == account.calendar.get(id=occ.id).uid
    assert account.calendar.get(id=occ.id).body == "Full save"

    stale = CalendarItem(account=account, folder=account.calendar, id=exc.id,
                         changekey=first_ck, subject="Stale")
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["subject"], conflict_resolution="NeverOverwrite")


def test_an_occurrence_from_calendar_view_is_saved_through_its_own_item_id(account):
    master = _weekly(account, local(2025, 1, 6, 10))
    view = _view(account, local(2025, 1, 1), local(2025, 2, 28))
    occ = view[3]
    assert occ.type == "Occurrence"
    occ.subject = "From the view"
    occ.save(update_fields=["subject"])                       # exchangelib insists on the same id
    assert occ.id == view[3].id
    got = _view(account, local(2025, 1, 1), local(2025, 2, 28))
    assert [i.type for i in got] == ["Occurrence"] * 3 + ["Exception", "Occurrence"]
    assert got[3].subject == "From the view" and got[3].id == occ.id
    assert [m.id for m in _refreshed(master).modified_occurrences] == [occ.id]


def test_an_occurrence_refuses_series_only_changes(account):
    master = _weekly(account, local(2025, 1, 6, 10))
    occ = master.occurrence(2)
    occ.recurrence = Recurrence(pattern=WeeklyPattern(interval=2, weekdays=[1]),
                                start=dt.date(2025, 1, 6), number=3)
    with pytest.raises(ErrorInvalidPropertySet):
        occ.save(update_fields=["recurrence"])
    occ = master.occurrence(2)
    occ.start, occ.end = local(2025, 1, 13, 12), local(2025, 1, 13, 11)
    with pytest.raises(ErrorCalendarEndDateIsEarlierThanStartDate):
        occ.save(update_fields=["start", "end"])
    assert _refreshed(master).modified_occurrences is None


def test_a_moved_exception_shows_where_it_was_moved_to(account):
    _weekly(account, local(2025, 1, 6, 10))
    week3 = (local(2025, 1, 19), local(2025, 1, 26))         # Sun..Sun around Monday 20.1.
    occ = _view(account, *week3)[0]
    occ.start, occ.end = local(2025, 1, 25, 8), local(2025, 1, 25, 9)   # Saturday, same week
    occ.save(update_fields=["start", "end"])
    assert [i.start for i in _view(account, local(2025, 1, 19), local(2025, 1, 25))] == []
    (moved,) = _view(account, local(2025, 1, 25), local(2025, 1, 26))
    assert moved.id == occ.id and moved.type == "Exception"
    assert moved.start == local(2025, 1, 25, 8) and moved.original_start == local(2025, 1, 20, 10)


def test_an_occurrence_cannot_be_moved_onto_or_past_its_neighbour(account):
    master = _weekly(account, local(2025, 1, 6, 10))
    occ = master.occurrence(2)
    occ.start, occ.end = local(2025, 1, 20, 15), local(2025, 1, 20, 16)  # day of occurrence 3
    with pytest.raises(ErrorOccurrenceCrossingBoundary):
        occ.save(update_fields=["start", "end"])
    assert _refreshed(master).modified_occurrences is None


def test_deleting_an_exception_turns_it_into_a_deleted_occurrence(account):
    master = _weekly(account, local(2025, 1, 6, 10))
    for index in (2, 4):
        occ = master.occurrence(index)
        occ.subject = f"Exception {index}"
        occ.save(update_fields=["subject"])
    exc2_id = _refreshed(master).modified_occurrences[0].id
    account.calendar.get(id=exc2_id).delete()                 # DeleteItem on its own ItemId
    master.occurrence(4).delete()                             # DeleteItem on OccurrenceItemId

    master.refresh()
    assert master.modified_occurrences is None
    assert [d.start for d in master.deleted_occurrences] == [local(2025, 1, 13, 10),
                                                             local(2025, 1, 27, 10)]
    view = _view(account, local(2025, 1, 1), local(2025, 2, 28))
    assert [(i.subject, i.start) for i in view] == [
        ("Weekly", local(2025, 1, 6, 10)), ("Weekly", local(2025, 1, 20, 10)),
        ("Weekly", local(2025, 2, 3, 10))]
    with pytest.raises(ErrorItemNotFound):
        account.calendar.get(id=exc2_id)
    with pytest.raises(ErrorCalendarOccurrenceIsDeletedFromRecurrence):
        master.occurrence(4).refresh()


def test_changing_the_series_pattern_drops_its_exceptions(account):
    master = _weekly(account, local(2025, 1, 6, 10))
    occ = master.occurrence(2)
    occ.location = "Room 7"                                   # only the location differs
    occ.save(update_fields=["location"])
    master.occurrence(3).delete()
    master.refresh()

    # Non-pattern edits keep exceptions; fields the exception did not override follow the master.
    master.subject = "Renamed series"
    master.save(update_fields=["subject"])
    master.save()                                             # full re-save of identical pattern
    master.refresh()
    assert len(master.modified_occurrences) == 1 and len(master.deleted_occurrences) == 1
    exc = account.calendar.get(id=occ.id)
    assert (exc.subject, exc.location, exc.type) == ("Renamed series", "Room 7", "Exception")

    master.recurrence = Recurrence(pattern=WeeklyPattern(interval=1, weekdays=[1]),
                                   start=dt.date(2025, 1, 6), number=6)
    master.save(update_fields=["recurrence"])
    master.refresh()
    assert master.modified_occurrences is None and master.deleted_occurrences is None
    view = _view(account, local(2025, 1, 1), local(2025, 2, 28))
    assert len(view) == 6
    assert {(i.type, i.location) for i in view} == {("Occurrence", "Room 1")}


def test_moving_the_series_start_time_drops_its_exceptions(account):
    master = _weekly(account, local(2025, 1, 6, 10))
    occ = master.occurrence(2)
    occ.subject = "Exception"
    occ.save(update_fields=["subject"])
    master.refresh()
    master.start, master.end = local(2025, 1, 6, 11), local(2025, 1, 6, 12)
    master.save(update_fields=["start", "end"])
    assert _refreshed(master).modified_occurrences is None
    view = _view(account, local(2025, 1, 1), local(2025, 2, 28))
    assert {(i.subject, i.start.astimezone(TZ).hour) for i in view} == {("Weekly", 11)}


def test_sync_reports_the_master_as_updated_after_an_occurrence_edit(account):
    master = _weekly(account, local(2025, 1, 6, 10))
    fields = ["subject", "start", "end", "type", "modified_occurrences"]
    initial = list(account.calendar.sync_items(only_fields=fields))
    assert [(kind, item.id) for kind, item in initial] == [("create", master.id)]
    state = account.calendar.item_sync_state

    occ = master.occurrence(2)
    occ.subject = "Exception"
    occ.save(update_fields=["subject"])
    changes = list(account.calendar.sync_items(sync_state=state, only_fields=fields))
    assert len(changes) == 1
    kind, item = changes[0]
    assert (kind, item.id, item.type) == ("update", master.id, "RecurringMaster")
    assert [m.id for m in item.modified_occurrences] == [occ.id]
    state = account.calendar.item_sync_state

    master.occurrence(3).delete()
    changes = list(account.calendar.sync_items(sync_state=state, only_fields=fields))
    assert [(kind, item.id) for kind, item in changes] == [("update", master.id)]
    # A plain FindItem still lists only the master: exceptions are not folder items.
    assert [i.id for i in account.calendar.all()] == [master.id]


def test_a_prague_series_across_dst_keeps_local_times_for_occurrences_and_exceptions(account):
    master = _weekly(account, local(2025, 3, 17, 9), number=4)   # Mondays; DST starts 30.3.
    after_dst = master.occurrence(3)                              # Monday 31.3. (CEST)
    after_dst.subject = "Renamed after DST"
    after_dst.save(update_fields=["subject"])
    moved = master.occurrence(4)                                  # Monday 7.4. -> 10:00 CEST
    moved.start, moved.end = local(2025, 4, 7, 10), local(2025, 4, 7, 11)
    moved.save(update_fields=["start", "end"])

    view = _view(account, local(2025, 3, 1), local(2025, 5, 1))
    assert [(i.type, i.start.astimezone(TZ).strftime("%d.%m. %H:%M")) for i in view] == [
        ("Occurrence", "17.03. 09:00"), ("Occurrence", "24.03. 09:00"),
        ("Exception", "31.03. 09:00"), ("Exception", "07.04. 10:00")]
    assert view[2].start == EWSDateTime(2025, 3, 31, 7, 0, tzinfo=UTC)   # 09:00 CEST
    master.refresh()
    assert [m.original_start.astimezone(TZ).hour for m in master.modified_occurrences] == [9, 9]
    assert [m.start.astimezone(TZ).hour for m in master.modified_occurrences] == [9, 10]
