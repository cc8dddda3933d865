"""The CRM's JSON fields in words (crm/describe.py), every pattern a series can have."""

from __future__ import annotations

from typing import Any

from django.test import SimpleTestCase

from crm.describe import occurrences_text, recipients_lines, recurrence_text


def rule(kind: str, span: dict[str, Any] | None = None, **pattern: Any) -> dict[str, Any]:
    return {"pattern": {"type": kind, **pattern},
            "range": {"start": "2027-01-04", "end": None, "count": None, **(span or {})}}


class RecurrenceTextTestCase(SimpleTestCase):
    def test_each_pattern_reads_as_a_sentence(self) -> None:
        cases = [
            (rule("daily", interval=1), "every day, without end"),
            (rule("daily", {"count": 10}, interval=3), "every 3 days, 10 times"),
            (rule("weekly", {"end": "2027-03-31"}, interval=2, weekdays=["Monday", "Wednesday"]),
             "every 2 weeks on Monday and Wednesday, until 31 March 2027"),
            (rule("weekly", interval=1, weekdays=["Monday", "Wednesday", "Friday"]),
             "every week on Monday, Wednesday and Friday, without end"),
            (rule("weekly", interval=1), "every week on Monday, without end"),  # the first day
            (rule("absolute_monthly", {"count": 1}, interval=1, day_of_month=15),
             "every month on day 15, once"),
            (rule("relative_monthly", interval=3, weekdays=["Tuesday"], week_index="Last"),
             "every 3 months on the last Tuesday, without end"),
            (rule("absolute_yearly", day_of_month=5, month=3),
             "every year on 5 March, without end"),
            (rule("relative_yearly", weekdays=["Weekday"], week_index="First", month=9),
             "every year on the first weekday of September, without end"),
        ]
        for data, expected in cases:
            with self.subTest(expected):
                self.assertEqual(recurrence_text(data), expected)

    def test_a_single_event_has_no_rule_to_read(self) -> None:
        self.assertEqual(recurrence_text(None), "")
        self.assertEqual(recurrence_text({}), "")


class OccurrencesAndRecipientsTestCase(SimpleTestCase):
    def test_deleted_occurrences_are_dates_on_the_events_wall_clock_in_order(self) -> None:
        self.assertEqual(
            occurrences_text(["2027-07-07T07:00:00+00:00", "2027-01-06T08:00:00Z"],
                             "Europe/Prague"),
            ["6 January 2027, 09:00", "7 July 2027, 09:00"])

    def test_recipients_are_lines_with_the_names_known(self) -> None:
        self.assertEqual(
            recipients_lines({"to": ["jana@acme.example", "petr@acme.example"], "cc": []},
                             {"jana@acme.example": "Jana Nováková"}),
            ["To: Jana Nováková <jana@acme.example>", "To: petr@acme.example"])
