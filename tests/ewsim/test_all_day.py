"""All-day events sit on midnights of their own time zone, as Exchange keeps them.

Microsoft, "Create all-day events by using EWS in Exchange"
(https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/how-to-create-all-day-events-by-using-ews-in-exchange):
"Non-midnight start times are adjusted to the midnight prior to the time specified. [...]
Non-midnight end times are adjusted to the midnight after the time specified", midnight
being "in the time zone of the request or appointment". Graph refuses them instead: the
event resource's `isAllDay` (https://learn.microsoft.com/en-us/graph/api/resources/event)
"start and end time must be set to midnight and be in the same time zone". A calendar item's
Duration is its elapsed time ("Duration", EWS reference: "Represents the duration of a
calendar item", https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/duration),
so 23 or 25 hours for an all-day event over a DST change.
"""

from __future__ import annotations

import datetime as dt

from exchangelib import CalendarItem, EWSDate, EWSDateTime, EWSTimeZone
from exchangelib.recurrence import DailyPattern, Recurrence

from ewsim import recurrence
from ewsim.timeutil import parse_dt

from .conftest import TZ
from .graph.client import Graph

UTC = dt.UTC
NEW_YORK = EWSTimeZone("America/New_York")


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def _stored(ewsim, item_id: str) -> tuple[dt.datetime, dt.datetime]:
    """The instants the server keeps (exchangelib turns all-day times into dates)."""
    item = ewsim.server.store.items[item_id]
    return parse_dt(item.text("Start")), parse_dt(item.text("End"))


def _all_day(account, start, end, **kw) -> CalendarItem:
    ev = CalendarItem(account=account, folder=account.calendar, subject="Holiday",
                      start=start, end=end, is_all_day=True, **kw)
    ev.save()
    return ev


def test_a_non_midnight_start_and_end_move_to_the_midnights_around_them(ewsim, account):
    # The documentation's example: 1:00 PM on June 6 starts at 12:00 AM on June 6 and
    # ends at 12:00 AM on June 7 (Prague is UTC+2 in June).
    ev = _all_day(account, EWSDateTime(2026, 6, 6, 13, tzinfo=TZ),
                  EWSDateTime(2026, 6, 6, 15, tzinfo=TZ))
    assert _stored(ewsim, ev.id) == (_at("2026-06-05T22:00"), _at("2026-06-06T22:00"))
    got = account.calendar.get(id=ev.id)
    # exchangelib reads an all-day end as its last day: before the fix this was June 5.
    assert (got.start, got.end) == (EWSDate(2026, 6, 6), EWSDate(2026, 6, 6))


def test_midnights_are_kept_as_they_are(ewsim, account):
    ev = _all_day(account, EWSDate(2026, 6, 6), EWSDate(2026, 6, 7))
    assert _stored(ewsim, ev.id) == (_at("2026-06-05T22:00"), _at("2026-06-07T22:00"))


def test_the_midnights_are_those_of_the_items_own_time_zone(ewsim, account):
    # The account's zone is Prague's; the item's is New York's (UTC-4 in June).
    ev = _all_day(account, EWSDateTime(2026, 6, 6, 20, tzinfo=NEW_YORK),
                  EWSDateTime(2026, 6, 7, 1, tzinfo=NEW_YORK))
    assert _stored(ewsim, ev.id) == (_at("2026-06-06T04:00"), _at("2026-06-08T04:00"))
    got = account.calendar.get(id=ev.id)
    assert (got.start, got.end) == (EWSDate(2026, 6, 6), EWSDate(2026, 6, 7))


def test_an_all_day_event_over_a_dst_change_lasts_23_or_25_hours(ewsim, account):
    spring = _all_day(account, EWSDateTime(2026, 3, 29, 10, tzinfo=TZ),
                      EWSDateTime(2026, 3, 29, 11, tzinfo=TZ))
    start, end = _stored(ewsim, spring.id)
    assert (start, end - start) == (_at("2026-03-28T23:00"), dt.timedelta(hours=23))
    autumn = _all_day(account, EWSDateTime(2026, 10, 25, 10, tzinfo=TZ),
                      EWSDateTime(2026, 10, 25, 11, tzinfo=TZ))
    start, end = _stored(ewsim, autumn.id)
    assert (start, end - start) == (_at("2026-10-24T22:00"), dt.timedelta(hours=25))
    got = account.calendar.get(id=autumn.id)
    assert (got.start, got.end, got.duration) == (EWSDate(2026, 10, 25), EWSDate(2026, 10, 25),
                                                   "P1DT1H")   # calendar:Duration, elapsed


def test_update_item_moves_new_times_and_a_newly_all_day_event_to_midnights(ewsim, account):
    ev = CalendarItem(account=account, folder=account.calendar, subject="Call",
                      start=EWSDateTime(2026, 6, 6, 10, tzinfo=TZ),
                      end=EWSDateTime(2026, 6, 6, 11, tzinfo=TZ))
    ev.save()
    assert _stored(ewsim, ev.id) == (_at("2026-06-06T08:00"), _at("2026-06-06T09:00"))
    ev.is_all_day = True
    ev.save(update_fields=["is_all_day"])
    assert _stored(ewsim, ev.id) == (_at("2026-06-05T22:00"), _at("2026-06-06T22:00"))
    ev = account.calendar.get(id=ev.id)
    ev.start, ev.end = (EWSDateTime(2026, 6, 8, 9, tzinfo=TZ),
                        EWSDateTime(2026, 6, 9, 9, tzinfo=TZ))
    ev.save(update_fields=["start", "end"])
    assert _stored(ewsim, ev.id) == (_at("2026-06-07T22:00"), _at("2026-06-09T22:00"))


def test_an_all_day_series_keeps_whole_local_days_across_dst(ewsim, account):
    series = _all_day(account, EWSDateTime(2026, 3, 28, 9, tzinfo=TZ),
                      EWSDateTime(2026, 3, 28, 17, tzinfo=TZ),
                      recurrence=Recurrence(pattern=DailyPattern(interval=1),
                                            start=EWSDate(2026, 3, 28), number=3))
    master = ewsim.server.store.items[series.id]
    slots = [(start, end) for _i, start, end in recurrence.slots(master)]
    assert slots == [(_at("2026-03-27T23:00"), _at("2026-03-28T23:00")),
                     (_at("2026-03-28T23:00"), _at("2026-03-29T22:00")),   # 23 hours
                     (_at("2026-03-29T22:00"), _at("2026-03-30T22:00"))]
    view = list(account.calendar.view(start=EWSDateTime(2026, 3, 27, tzinfo=TZ),
                                      end=EWSDateTime(2026, 4, 1, tzinfo=TZ)))
    # exchangelib reads the 23-hour day's end one day early (it steps back 24 hours from
    # the midnight after it): clients get the elapsed time from Duration instead.
    assert [(o.start, o.duration) for o in view] == [
        (EWSDate(2026, 3, 28), "P1D"), (EWSDate(2026, 3, 29), "PT23H"),
        (EWSDate(2026, 3, 30), "P1D")]
    # An occurrence moved to a non-midnight time becomes an exception on midnights.
    second = series.occurrence(2)
    second.refresh()
    second.start = EWSDateTime(2026, 3, 29, 12, tzinfo=TZ)
    second.end = EWSDateTime(2026, 3, 29, 13, tzinfo=TZ)
    second.save(update_fields=["start", "end"])
    assert master.exceptions[2].times() == (_at("2026-03-28T23:00"), _at("2026-03-29T22:00"))


def test_graph_refuses_an_all_day_event_off_midnight_and_takes_one_on_midnights(ewsim):
    graph = Graph.connect(ewsim, prefer=['outlook.timezone="UTC"'])

    def post(start: str, end: str, zone: str = "Europe/Prague"):
        return graph.post("events", {"subject": "Holiday", "isAllDay": True,
                                     "start": {"dateTime": start, "timeZone": zone},
                                     "end": {"dateTime": end, "timeZone": zone}})

    refused = post("2026-03-29T10:00:00", "2026-03-30T00:00:00")
    assert refused.status == 400, refused.raw
    assert refused.json["error"]["code"] == "ErrorPropertyValidationFailure"
    mixed = graph.post("events", {
        "subject": "Holiday", "isAllDay": True,
        "start": {"dateTime": "2026-03-29T00:00:00", "timeZone": "Europe/Prague"},
        "end": {"dateTime": "2026-03-30T00:00:00", "timeZone": "UTC"}})
    assert mixed.status == 400, mixed.raw
    assert not [i for i in ewsim.server.store.items.values() if i.tag == "CalendarItem"]
    created = post("2026-03-29T00:00:00", "2026-03-30T00:00:00")
    assert created.status == 201, created.raw
    assert _stored(ewsim, created.json["id"]) == (_at("2026-03-28T23:00"),
                                                  _at("2026-03-29T22:00"))
    moved = graph.patch(f"events/{created.json['id']}",
                        {"end": {"dateTime": "2026-03-30T12:00:00",
                                 "timeZone": "Europe/Prague"}})
    assert moved.status == 400, moved.raw
    assert _stored(ewsim, created.json["id"]) == (_at("2026-03-28T23:00"),
                                                  _at("2026-03-29T22:00"))
