"""Series written with their moved and deleted occurrences: the occurrence writes of a whole
batch go out together, not a round of requests per series."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from engine.mailbox.base import ItemRef, Update
from engine.mailbox.ews import EwsMailbox
from engine.records import EventRecord, Kind, RecurrenceRule
from ewsim.testing import SimHandle

from .conftest import access_to

PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")
MONDAY = dt.date(2030, 3, 4)


def series(n: int, moved: bool = True) -> EventRecord:
    """Weekly, four Mondays; the second moved two hours later, the third deleted."""
    local = dt.datetime.combine(MONDAY, dt.time(9 + n), PRAGUE)
    start, end = local.astimezone(dt.UTC), (local + dt.timedelta(hours=1)).astimezone(dt.UTC)
    second = (local + dt.timedelta(weeks=1)).astimezone(dt.UTC)
    third = (local + dt.timedelta(weeks=2)).astimezone(dt.UTC)
    exception = EventRecord(subject=f"Series {n} (moved)", start=second + dt.timedelta(hours=2),
                            end=second + dt.timedelta(hours=3), original_start=second,
                            kind="exception")
    return EventRecord(
        subject=f"Series {n}", start=start, end=end, time_zone="Europe/Prague",
        recurrence=RecurrenceRule(pattern="weekly", weekdays=("Monday",), start=MONDAY,
                                  count=4),
        exceptions=[exception] if moved else [], deleted_occurrences=(third,) if moved else (),
        kind="master")


def single(n: int) -> EventRecord:
    start = dt.datetime.combine(MONDAY, dt.time(8), PRAGUE).astimezone(dt.UTC)
    return EventRecord(subject=f"Single {n}", start=start, end=start + dt.timedelta(hours=1),
                       time_zone="Europe/Prague", kind="single")


def exchange_events(sim: SimHandle) -> dict[str, EventRecord]:
    """Every event of Alice's calendar, read afresh."""
    with EwsMailbox(access_to(sim)) as backend:
        folder = backend.get_folder("calendar", Kind.CALENDAR)
        return {change.ref.id: change.record for page in backend.read_changes(folder, None)
                for change in page.changes if isinstance(change.record, EventRecord)}


def moved_and_deleted(record: EventRecord) -> tuple[list[str], int]:
    return [e.subject for e in record.exceptions], len(record.deleted_occurrences)


def test_a_batch_of_series_writes_all_their_occurrences_in_one_round(ewsim: SimHandle) -> None:
    records = [series(0), single(1), series(2), series(3, moved=False), series(4)]
    with EwsMailbox(access_to(ewsim)) as mailbox:
        folder = mailbox.get_folder("calendar", Kind.CALENDAR)
        ewsim.control.reset_counters()
        results = mailbox.create(folder, records)
    assert all(r.ok for r in results), [r.message for r in results]
    # One CreateItem for the batch, then one UpdateItem (the moved occurrences of all three
    # series), one DeleteItem (their deleted ones) and one GetItem (their new change keys).
    assert ewsim.control.counters() == {"CreateItem": 1, "UpdateItem": 1, "DeleteItem": 1,
                                        "GetItem": 1}
    in_exchange = exchange_events(ewsim)
    assert {r.ref.id for r in results if r.ref} == set(in_exchange)
    by_subject = {record.subject: record for record in in_exchange.values()}
    for n in (0, 2, 4):
        assert moved_and_deleted(by_subject[f"Series {n}"]) == ([f"Series {n} (moved)"], 1)
    assert moved_and_deleted(by_subject["Series 3"]) == ([], 0)
    # The change keys returned are the masters' current ones: an update with them applies.
    with EwsMailbox(access_to(ewsim)) as mailbox:
        updates = [Update(ItemRef(r.ref.id, r.ref.version), record, frozenset({"location"}))
                   for r, record in zip(results, records, strict=True) if r.ref]
        updates = [Update(u.ref, EventRecord(**{**u.record.__dict__, "location": "Brno"}),
                          u.fields) for u in updates]
        assert all(r.ok for r in mailbox.update(Kind.CALENDAR, updates))
    assert {record.location for record in exchange_events(ewsim).values()} == {"Brno"}


def test_an_occurrence_that_cannot_be_placed_fails_only_its_own_series(
        ewsim: SimHandle) -> None:
    wrong = series(0)
    stray = EventRecord(subject="Nowhere", start=wrong.start, end=wrong.end,
                        original_start=wrong.start + dt.timedelta(days=3), kind="exception")
    wrong = EventRecord(**{**wrong.__dict__, "exceptions": [stray]})
    with EwsMailbox(access_to(ewsim)) as mailbox:
        folder = mailbox.get_folder("calendar", Kind.CALENDAR)
        first, second = mailbox.create(folder, [wrong, series(1)])
    assert first.ok and "no occurrence starts at" in first.message
    assert second.ok and not second.message
    by_subject = {record.subject: record for record in exchange_events(ewsim).values()}
    assert moved_and_deleted(by_subject["Series 0"]) == ([], 1)
    assert moved_and_deleted(by_subject["Series 1"]) == (["Series 1 (moved)"], 1)


def test_an_update_of_the_occurrences_alone_is_written(ewsim: SimHandle) -> None:
    """Only a moved occurrence changed (its time), or one more occurrence deleted: nothing
    of the master itself to send, and still the occurrences are written, not reported as
    done while Exchange keeps the old ones."""
    record = series(0)
    with EwsMailbox(access_to(ewsim)) as mailbox:
        folder = mailbox.get_folder("calendar", Kind.CALENDAR)
        (made,) = mailbox.create(folder, [record])
    assert made.ok and made.ref is not None
    moved = record.exceptions[0]
    later = EventRecord(**{**moved.__dict__, "start": moved.start + dt.timedelta(hours=1),
                           "end": moved.end + dt.timedelta(hours=1)})
    fourth = record.start + dt.timedelta(weeks=3)
    changed = EventRecord(**{**record.__dict__, "exceptions": [later],
                             "deleted_occurrences": (*record.deleted_occurrences, fourth)})
    with EwsMailbox(access_to(ewsim)) as mailbox:
        (result,) = mailbox.update(Kind.CALENDAR, [
            Update(made.ref, changed, frozenset({"exceptions", "deleted_occurrences"}))])
    assert result.ok, result.message
    assert result.ref is not None and result.ref.version != made.ref.version
    (back,) = exchange_events(ewsim).values()
    assert [(e.start, e.end) for e in back.exceptions] == [(later.start, later.end)]
    assert back.deleted_occurrences == tuple(sorted((*record.deleted_occurrences, fourth)))
    # Written again whole (a change of the master): the occurrences deleted already are no
    # problem to report.
    again = EventRecord(**{**changed.__dict__, "location": "Brno"})
    with EwsMailbox(access_to(ewsim)) as mailbox:
        (result,) = mailbox.update(Kind.CALENDAR, [
            Update(result.ref, again, frozenset({"location", "deleted_occurrences"}))])
    assert result.ok and not result.message, result.message
    (back,) = exchange_events(ewsim).values()
    assert back.location == "Brno" and len(back.deleted_occurrences) == 2
