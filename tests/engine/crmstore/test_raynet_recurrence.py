"""A series' rule in Raynet's terms: the note a series meeting carries reads back as it was
written, whatever Exchange's pattern; Raynet's own `recurrence` reads as the engine's rule."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.crmstore.raynet_recurrence import SeriesNote, rule_from_raynet
from engine.records import RecurrenceRule

MOMENT = dt.datetime(2030, 3, 18, 8, tzinfo=dt.UTC)

RULES = [
    RecurrenceRule("daily", 3, start=dt.date(2030, 3, 4), count=10),
    RecurrenceRule("weekly", 2, weekdays=("Monday", "Thursday"), first_day_of_week="Sunday",
                   start=dt.date(2030, 3, 4), end=dt.date(2030, 12, 31)),
    RecurrenceRule("absolute_monthly", 1, day_of_month=31, start=dt.date(2030, 1, 31)),
    RecurrenceRule("relative_monthly", 1, weekdays=("Friday",), week_index="Last",
                   start=dt.date(2030, 1, 25), count=6),
    RecurrenceRule("absolute_yearly", 1, day_of_month=29, month=2, start=dt.date(2032, 2, 29)),
    RecurrenceRule("relative_yearly", 1, weekdays=("Weekday",), week_index="First", month=9,
                   start=dt.date(2030, 9, 2)),
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.pattern)
def test_a_series_note_reads_back_as_written(rule: RecurrenceRule) -> None:
    note = SeriesNote(rule, "America/Argentina/Buenos_Aires",
                      (MOMENT, MOMENT + dt.timedelta(weeks=2)),
                      (("123", MOMENT + dt.timedelta(weeks=1)),))
    ext_id = note.ext_id()
    # An external id is also a path: nothing in it may split or escape one.
    assert "/" not in ext_id and "?" not in ext_id and "%" not in ext_id and " " not in ext_id
    assert SeriesNote.parse(ext_id) == note
    assert SeriesNote.of(["exchange:AAMk", ext_id]) == note
    assert note.keys == ("123",)


def test_notes_of_one_rule_differ_by_their_token() -> None:
    assert SeriesNote(RULES[0]).ext_id() != SeriesNote(RULES[0]).ext_id()


@pytest.mark.parametrize("ext_id", ["uid:abc", "series:", "series:ab;P=weekly",
                                    "series:ab;P=weekly;I=x;D=;M=;Y=;W=;F=;S=;E=;C=;Z=;X=;K="])
def test_what_is_no_series_note_reads_as_none(ext_id: str) -> None:
    assert SeriesNote.parse(ext_id) is None


def test_raynets_own_recurrence_reads_as_the_engines_rule() -> None:
    first = dt.date(2030, 3, 5)
    weekly = {"id": 5, "count": 3, "endDate": None, "interval": "WEEKLY", "recurrenceDay": 4,
              "startDate": "2030-03-05"}
    assert rule_from_raynet(weekly, first) == RecurrenceRule(
        "weekly", 1, weekdays=("Thursday",), start=first, count=3)
    assert rule_from_raynet({**weekly, "recurrenceDay": None}, first).weekdays == ("Tuesday",)
    monthly = {"interval": "MONTHLY", "recurrenceDay": 15, "endDate": "2030-12-31"}
    assert rule_from_raynet(monthly, first) == RecurrenceRule(
        "absolute_monthly", 1, day_of_month=15, start=first, end=dt.date(2030, 12, 31))
    assert rule_from_raynet({"interval": "YEARLY"}, first) == RecurrenceRule(
        "absolute_yearly", 1, day_of_month=5, month=3, start=first)
    assert rule_from_raynet({"interval": "DAILY", "count": 0}, first) == RecurrenceRule(
        "daily", 1, start=first)
    assert rule_from_raynet(None, first) is None
    assert rule_from_raynet({"interval": "HOURLY"}, first) is None
