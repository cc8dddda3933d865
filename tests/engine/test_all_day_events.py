"""All-day events end to end: other clients' all-day events reach the CRM on their days, and
the CRM's land in Exchange on theirs, in the event's own zone and across DST changes.

Exchange keeps an all-day event from the midnight before its start to the midnight after its
end in the event's zone ("Create all-day events by using EWS in Exchange",
https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/how-to-create-all-day-events-by-using-ews-in-exchange);
ewsim does the same (tests/ewsim/test_all_day.py). The CRM keeps the same span: start at the
first day's midnight, end at the midnight after the last day.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from exchangelib import (
    BASIC,
    DELEGATE,
    Account,
    Build,
    CalendarItem,
    Configuration,
    Credentials,
    EWSDate,
    EWSDateTime,
    EWSTimeZone,
    FailFast,
    Version,
)
from exchangelib.recurrence import DailyPattern, Recurrence

from crm.models import Event
from engine.models import Run
from ewsim.testing import SimHandle

from .sync_helpers import make_profile, run_calendar

pytestmark = pytest.mark.django_db(transaction=True)
PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
EWS_PRAGUE, EWS_NEW_YORK = EWSTimeZone("Europe/Prague"), EWSTimeZone("America/New_York")


def outlook(sim: SimHandle) -> Account:
    """Alice's own client (not the product) writing to her calendar over EWS."""
    config = Configuration(service_endpoint=sim.url, credentials=Credentials(sim.user,
                                                                             sim.password),
                           auth_type=BASIC, version=Version(build=Build(15, 1, 2507, 6)),
                           retry_policy=FailFast())
    return Account(sim.user, config=config, autodiscover=False, access_type=DELEGATE,
                   default_timezone=EWS_PRAGUE)


def all_day(account: Account, subject: str, start: object, end: object,
            **kw: object) -> CalendarItem:
    item = CalendarItem(account=account, folder=account.calendar, subject=subject,
                        start=start, end=end, is_all_day=True, **kw)
    item.save()
    return item


def midnight(day: dt.date, zone: zoneinfo.ZoneInfo = PRAGUE) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), zone)


def span(event: Event, zone: zoneinfo.ZoneInfo = PRAGUE) -> tuple[dt.datetime, dt.datetime]:
    return event.start.astimezone(zone), event.end.astimezone(zone)


def stored(sim: SimHandle, item_id: str) -> tuple[dt.datetime, dt.datetime]:
    """The instants ewsim keeps (exchangelib reads an all-day event's as dates)."""
    item = sim.server.store.items[item_id]
    start, end = (dt.datetime.fromisoformat(str(item.text(tag)).replace("Z", "+00:00"))
                  for tag in ("Start", "End"))
    return start, end


def test_other_clients_all_day_events_reach_the_crm_on_their_days(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    client = outlook(ewsim)
    # Off midnight, on the day Prague moves its clocks forward (a 23-hour day).
    all_day(client, "Spring", EWSDateTime(2026, 3, 29, 10, tzinfo=EWS_PRAGUE),
            EWSDateTime(2026, 3, 29, 11, tzinfo=EWS_PRAGUE))
    # In a zone other than the profile's: two days in New York.
    all_day(client, "New York", EWSDateTime(2026, 3, 30, 20, tzinfo=EWS_NEW_YORK),
            EWSDateTime(2026, 3, 31, 1, tzinfo=EWS_NEW_YORK))
    # A three-day series over the same change, and one of its days moved off midnight.
    # (exchangelib takes dates as the first and the last day)
    series = all_day(client, "Trade fair", EWSDate(2026, 3, 28), EWSDate(2026, 3, 28),
                     recurrence=Recurrence(pattern=DailyPattern(interval=1),
                                           start=EWSDate(2026, 3, 28), number=3))
    third = series.occurrence(3)
    third.refresh()
    third.subject = "Trade fair (last day)"
    third.start = EWSDateTime(2026, 3, 30, 8, tzinfo=EWS_PRAGUE)
    third.end = EWSDateTime(2026, 3, 30, 16, tzinfo=EWS_PRAGUE)
    third.save(update_fields=["subject", "start", "end"])

    run = run_calendar(ewsim, profile, today=dt.date(2026, 3, 20))
    assert run.status == Run.Status.SUCCESS, run.message
    assert run.crm_created == 3, list(run.items.values_list("action", "detail"))
    spring = Event.objects.get(subject="Spring")
    assert (spring.all_day, spring.time_zone) == (True, "Europe/Prague")
    assert span(spring) == (midnight(dt.date(2026, 3, 29)), midnight(dt.date(2026, 3, 30)))
    assert spring.end - spring.start == dt.timedelta(hours=23)
    new_york = Event.objects.get(subject="New York")
    assert (new_york.all_day, new_york.time_zone) == (True, "America/New_York")
    assert span(new_york, NEW_YORK) == (midnight(dt.date(2026, 3, 30), NEW_YORK),
                                        midnight(dt.date(2026, 4, 1), NEW_YORK))
    fair = Event.objects.get(subject="Trade fair")
    assert fair.all_day and fair.recurrence["range"]["count"] == 3
    assert span(fair) == (midnight(dt.date(2026, 3, 28)), midnight(dt.date(2026, 3, 29)))
    (last_day,) = fair.exceptions.all()
    assert span(last_day) == (midnight(dt.date(2026, 3, 30)), midnight(dt.date(2026, 3, 31)))
    # Read again, nothing differs.
    assert run_calendar(ewsim, profile, today=dt.date(2026, 3, 20)).items.count() == 0


def test_crm_all_day_events_land_in_exchange_on_their_days(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)

    def crm_all_day(subject: str, first: dt.date, days: int, zone: zoneinfo.ZoneInfo,
                    **fields: object) -> Event:
        return Event.objects.create(
            organization_id=profile.organization_id, owner=profile.crm_user, subject=subject,
            start=midnight(first, zone), end=midnight(first + dt.timedelta(days=days), zone),
            time_zone=zone.key, all_day=True, **fields)

    # 25 October 2026: Prague's clocks go back, a 25-hour day.
    crm_all_day("Autumn", dt.date(2026, 10, 25), 1, PRAGUE)
    crm_all_day("Trip", dt.date(2026, 10, 27), 2, NEW_YORK)
    crm_all_day("Daily", dt.date(2026, 10, 24), 1, PRAGUE, recurrence={
        "pattern": {"type": "daily", "interval": 1},
        "range": {"start": "2026-10-24", "end": None, "count": 3}})
    run = run_calendar(ewsim, profile, today=dt.date(2026, 10, 20))
    assert run.remote_created == 3, list(run.items.values_list("action", "detail"))

    utc = dt.UTC
    by_subject = {i.text("Subject"): i.id for i in ewsim.server.store.items.values()}
    assert stored(ewsim, by_subject["Autumn"]) == (
        dt.datetime(2026, 10, 24, 22, tzinfo=utc), dt.datetime(2026, 10, 25, 23, tzinfo=utc))
    assert stored(ewsim, by_subject["Trip"]) == (
        dt.datetime(2026, 10, 27, 4, tzinfo=utc), dt.datetime(2026, 10, 29, 4, tzinfo=utc))
    client = outlook(ewsim)
    days = {e.subject: (e.start, e.end) for e in client.calendar.view(
        start=EWSDateTime(2026, 10, 20, tzinfo=EWS_PRAGUE),
        end=EWSDateTime(2026, 11, 1, tzinfo=EWS_PRAGUE))
        if e.subject != "Daily"}
    # exchangelib names an all-day event's first and last day.
    assert days == {"Autumn": (EWSDate(2026, 10, 25), EWSDate(2026, 10, 25)),
                    "Trip": (EWSDate(2026, 10, 27), EWSDate(2026, 10, 28))}
    daily = [(e.start, e.end) for e in client.calendar.view(
        start=EWSDateTime(2026, 10, 20, tzinfo=EWS_PRAGUE),
        end=EWSDateTime(2026, 11, 1, tzinfo=EWS_PRAGUE)) if e.subject == "Daily"]
    assert daily == [(EWSDate(2026, 10, d), EWSDate(2026, 10, d)) for d in (24, 25, 26)]
    assert run_calendar(ewsim, profile, today=dt.date(2026, 10, 20)).items.count() == 0
