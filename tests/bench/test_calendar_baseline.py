"""calendar-first-sync's baselines leave what the product leaves (bench/calendar.py): a
series' moved occurrence is written, and the comparison of two mailboxes sees it."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from bench import calendar
from bench.run import PASSWORD, USER, _account
from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)

OTHER, OTHER_PASSWORD = "other@example.com", "other-secret"
TODAY = dt.date(2026, 3, 2)


def accounts(sim):
    sim.control.add_user(USER, PASSWORD, display_name="Benchmark")
    sim.control.add_user(OTHER, OTHER_PASSWORD, display_name="Other")
    return _account(sim.url), _account(sim.url, OTHER, OTHER_PASSWORD)


def test_the_baseline_writes_a_series_moved_occurrence(ewsim):  # noqa: F811
    mine, _ = accounts(ewsim)
    series = calendar.event(0, "crm", TODAY)   # event 0: a series with a moved occurrence
    (moved,) = series.exceptions
    calendar.baseline_create(mine, [series, calendar.event(1, "crm", TODAY)])
    state = calendar.exchange_state(mine)
    assert len(state) == 2
    (exceptions,) = [s[10] for s in state if s[10]]
    ((original, start, _end, subject, _location, _body),) = exceptions
    assert (original, start) == (str(moved.original_start), str(moved.start))
    assert subject == moved.subject


def test_two_mailboxes_compare_the_same_only_with_the_same_moved_occurrences(ewsim):  # noqa: F811
    mine, other = accounts(ewsim)
    records = [calendar.event(0, "crm", TODAY), calendar.event(1, "crm", TODAY)]
    calendar.baseline_create(mine, records)
    calendar.baseline_create(other, [replace(records[0], exceptions=[]), records[1]])
    assert not calendar.same_state(mine, other)
    calendar.baseline_exceptions(other, [
        (calendar.CalendarItem(account=other, folder=other.calendar, id=item.id,
                               changekey=item.changekey), records[0])
        for item in other.calendar.filter(subject=records[0].subject)])
    assert calendar.same_state(mine, other)
