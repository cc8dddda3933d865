"""Series expansion on the wall clock of the series' zone."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

from hypothesis import given
from hypothesis import strategies as st

from engine.records import RecurrenceRule
from engine.recurrence import index_of, last_start, occurrences, overlaps

PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")
MONDAY_9 = dt.datetime(2026, 3, 16, 9, tzinfo=PRAGUE)   # two weeks before the DST change


def test_a_weekly_series_keeps_its_local_time_across_dst() -> None:
    rule = RecurrenceRule("weekly", weekdays=("Monday",), count=4)
    starts = [s for _, s in occurrences(rule, MONDAY_9, "Europe/Prague")]
    assert [s.astimezone(PRAGUE).hour for s in starts] == [9, 9, 9, 9]
    assert [s.hour for s in starts] == [8, 8, 7, 7]          # UTC moves with DST
    assert last_start(rule, MONDAY_9, "Europe/Prague") == starts[-1]


def test_an_occurrence_is_found_by_its_original_start() -> None:
    rule = RecurrenceRule("weekly", weekdays=("Monday", "Wednesday"), end=dt.date(2026, 4, 30))
    third = dt.datetime(2026, 3, 23, 9, tzinfo=PRAGUE)
    assert index_of(rule, MONDAY_9, "Europe/Prague", third) == 3
    assert index_of(rule, MONDAY_9, "Europe/Prague", third + dt.timedelta(hours=1)) is None


def test_monthly_and_yearly_patterns() -> None:
    last_friday = RecurrenceRule("relative_monthly", weekdays=("Friday",), week_index="Last",
                                 count=3)
    first = dt.datetime(2026, 1, 30, 14, tzinfo=PRAGUE)
    days = [s.astimezone(PRAGUE).date() for _, s in occurrences(last_friday, first,
                                                                  "Europe/Prague")]
    assert days == [dt.date(2026, 1, 30), dt.date(2026, 2, 27), dt.date(2026, 3, 27)]
    the_31st = RecurrenceRule("absolute_monthly", day_of_month=31, count=3)
    days = [s.astimezone(PRAGUE).date() for _, s in occurrences(
        the_31st, dt.datetime(2026, 1, 31, 8, tzinfo=PRAGUE), "Europe/Prague")]
    assert days == [dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 3, 31)]


def test_a_series_overlaps_a_window_when_any_occurrence_does() -> None:
    rule = RecurrenceRule("weekly", weekdays=("Monday",))        # no end
    hour = dt.timedelta(hours=1)
    window = (dt.datetime(2027, 1, 5, tzinfo=dt.UTC), dt.datetime(2027, 1, 12, tzinfo=dt.UTC))
    assert overlaps(rule, MONDAY_9, hour, "Europe/Prague", *window)
    ended = RecurrenceRule("weekly", weekdays=("Monday",), count=2)
    assert not overlaps(ended, MONDAY_9, hour, "Europe/Prague", *window)


@given(st.sampled_from(["daily", "weekly", "absolute_monthly", "relative_monthly"]),
       st.integers(1, 4), st.integers(1, 8))   # within the expansion horizon
def test_occurrences_are_strictly_increasing_and_counted(pattern: str, interval: int,
                                                         count: int) -> None:
    rule = RecurrenceRule(pattern, interval=interval, weekdays=("Tuesday",), day_of_month=15,
                          week_index="Second", count=count)
    found = list(occurrences(rule, MONDAY_9, "Europe/Prague"))
    assert [i for i, _ in found] == list(range(1, len(found) + 1))
    assert len(found) == count
    assert all(a[1] < b[1] for a, b in itertools.pairwise(found))
