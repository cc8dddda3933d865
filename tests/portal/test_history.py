"""The sync history: filters, paging, the chart, a run's detail and the CSV exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools

from django.urls import reverse
from django.utils import formats, timezone

from crm.models import Person
from engine.models import Run, RunItem
from portal import chart
from portal.history import RUNS_PER_PAGE
from tests.portal.base import PortalTestCase


def csv_rows(response, delimiter: str = ",") -> list[list[str]]:  # type: ignore[no-untyped-def]
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")   # Excel reads UTF-8 only with the byte order mark
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff")), delimiter=delimiter))


class HistoryTestCase(PortalTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.sign_in(self.dave)
        now = timezone.now()
        self.contacts = self.make_run(self.daves, crm_created=5, errors=2,
                                      started=now - dt.timedelta(days=3))
        self.calendar = self.make_run(self.daves, agenda="calendar",
                                      status=Run.Status.FAILED, message="Exchange said 401",
                                      started=now - dt.timedelta(days=1))
        # Today in the site's time zone whatever the hour (an hour ago is yesterday just
        # after midnight): halfway between local midnight and now.
        midnight = timezone.make_aware(dt.datetime.combine(timezone.localdate(now), dt.time()))
        self.analysis = self.make_run(self.daves, kind=Run.Kind.ANALYSIS, remote_created=4,
                                      started=midnight + (now - midnight) / 2)

    def _listed(self, query: str = "") -> list[int]:
        response = self.client.get(reverse("portal:history") + query)
        assert response.status_code == 200
        return [run.pk for run in response.context["page"].items]

    def test_it_lists_runs_newest_first_and_filters_by_agenda_status_kind_and_date(
            self) -> None:
        assert self._listed() == [self.analysis.pk, self.calendar.pk, self.contacts.pk]
        assert self._listed("?agenda=calendar") == [self.calendar.pk]
        assert self._listed("?status=failed") == [self.calendar.pk]
        assert self._listed("?kind=analysis") == [self.analysis.pk]
        today = timezone.localdate()
        two_days_ago = (today - dt.timedelta(days=2)).isoformat()
        assert self._listed(f"?since={two_days_ago}") == [self.analysis.pk, self.calendar.pk]
        assert self._listed(f"?until={two_days_ago}") == [self.contacts.pk]
        assert self._listed(f"?since={today.isoformat()}&until={today.isoformat()}") == [
            self.analysis.pk]
        # A value that does not parse filters nothing rather than failing.
        assert len(self._listed("?since=yesterday&agenda=nonsense&page=x")) == 3

    def test_it_pages_without_counting(self) -> None:
        for minutes in range(RUNS_PER_PAGE):
            self.make_run(self.daves, started=timezone.now() - dt.timedelta(days=10,
                                                                             minutes=minutes))
        first = self.client.get(reverse("portal:history") + "?kind=sync&agenda=contacts")
        assert len(first.context["page"].items) == RUNS_PER_PAGE
        self.assertContains(first, "?kind=sync&amp;agenda=contacts&amp;page=2")
        second = self.client.get(reverse("portal:history") + "?kind=sync&agenda=contacts&page=2")
        assert len(second.context["page"].items) == 1   # 51 runs of the kind
        self.assertNotContains(second, "page=3")
        self.assertContains(second, "page=1")

    def test_the_chart_draws_the_last_thirty_runs_as_svg(self) -> None:
        for minutes in range(35):
            self.make_run(self.daves, crm_created=minutes, errors=minutes % 3,
                          started=timezone.now() - dt.timedelta(days=5, minutes=minutes))
        page = self.client.get(reverse("portal:history"))
        self.assertContains(page, "<svg", count=1)
        self.assertContains(page, 'class="bar-items"', count=30)
        self.assertContains(page, 'class="bar-errors"', count=30)
        self.assertContains(page, "Changed items and errors of the last 30 runs shown")

    def test_the_chart_has_a_time_axis_with_the_runs_start_times_and_days(self) -> None:
        yesterday = timezone.make_aware(dt.datetime.combine(
            timezone.localdate() - dt.timedelta(days=1), dt.time(9, 10)))
        starts = [yesterday + dt.timedelta(minutes=10 * n) for n in range(12)] + [
            yesterday + dt.timedelta(days=1, minutes=10 * n) - dt.timedelta(hours=8)
            for n in range(3)]
        Run.objects.filter(profile=self.daves).delete()
        for started in starts:
            self.make_run(self.daves, crm_created=1, started=started)
        page = self.client.get(reverse("portal:history"), headers={"accept-language": "cs"})
        svg = page.content.decode().split("<svg", 1)[1].split("</svg>", 1)[0]
        times = [text.split(">", 1)[1].split("<", 1)[0]
                 for text in svg.split('<text class="time"')[1:]]
        days = [text.split(">", 1)[1].split("<", 1)[0]
                for text in svg.split('<text class="day"')[1:]]
        # The newest run's time always, then every fifth column's (30 slots: 90 units
        # apart); the day where it changes.
        assert times == [timezone.localtime(starts[index]).strftime("%-H:%M")
                         for index in (4, 9, 14)]
        assert days == sorted({timezone.localtime(s).strftime("%d.%m.%Y") for s in starts})
        # Each label stands under a column, left to right.
        xs = [float(text.split('x="', 1)[1].split('"', 1)[0])
              for text in svg.split('<text class="time"')[1:]]
        assert xs == sorted(xs) and xs[0] > chart.LEFT and xs[-1] < chart.WIDTH
        assert all(b - a >= chart.LABEL_WIDTH for a, b in itertools.pairwise(xs))

    def test_the_chart_keeps_svg_numbers_unlocalized_in_czech(self) -> None:
        self.make_run(self.daves, crm_created=7)
        page = self.client.get(reverse("portal:history"), headers={"accept-language": "cs"})
        svg = page.content.decode().split("<svg", 1)[1].split("</svg>", 1)[0]
        for rect in svg.split("<rect")[1:]:
            assert "," not in rect.split(">")[0], rect   # 12,5 would break the drawing

    def test_the_history_exports_as_csv_with_the_filters(self) -> None:
        rows = csv_rows(self.client.get(reverse("portal:history_csv")
                                        + "?kind=sync&agenda=contacts"))
        assert rows[0][:5] == ["Run", "Started", "Finished", "Duration (s)", "Profile"]
        assert [row[0] for row in rows[1:]] == [str(self.contacts.pk)]
        assert rows[1][4:8] == ["dave@acme.example", "Contacts", "sync", "success"]
        assert rows[1][9] == "5" and rows[1][18] == "2"

    def test_english_csv_has_commas_a_decimal_point_and_iso_times(self) -> None:
        rows = csv_rows(self.client.get(reverse("portal:history_csv")
                                        + "?agenda=contacts&kind=sync",
                                        headers={"accept-language": "en"}))
        started = timezone.localtime(self.contacts.started)
        assert rows[1][1] == started.strftime("%Y-%m-%d %H:%M:%S")
        assert rows[1][3] == "3.0"   # make_run's runs take three seconds

    def test_czech_csv_is_what_a_czech_excel_opens_semicolons_decimal_commas_dates_day_first(
            self) -> None:
        self.make_run(self.daves, crm_created=1, message="Petr Svoboda; Nová, s.r.o.",
                      started=timezone.now() - dt.timedelta(days=4))
        response = self.client.get(reverse("portal:history_csv") + "?agenda=contacts&kind=sync",
                                   headers={"accept-language": "cs"})
        raw = b"".join(response.streaming_content)
        assert raw.startswith("\ufeff".encode())   # UTF-8 with its byte order mark
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8").removeprefix("\ufeff")),
                               delimiter=";"))
        assert all(len(row) == 21 for row in rows)   # semicolons separate, commas do not
        started = timezone.localtime(self.contacts.started)
        assert rows[1][1] == started.strftime("%d.%m.%Y %H:%M:%S")
        assert rows[1][3] == "3,0"
        assert rows[2][-1] == "Petr Svoboda; Nová, s.r.o."   # quoted, read back whole

    def test_the_duplicates_export_follows_the_language_too(self) -> None:
        self.make_candidate(self.daves)
        cs = self.client.get(reverse("portal:duplicates_csv"), headers={"accept-language": "cs"})
        assert all(len(row) == 11 for row in csv_rows(cs, delimiter=";"))
        en = self.client.get(reverse("portal:duplicates_csv"), headers={"accept-language": "en"})
        assert all(len(row) == 11 for row in csv_rows(en))

    def test_a_runs_detail_shows_the_counts_per_side_and_its_items(self) -> None:
        person = Person.objects.create(organization=self.acme, first_name="Petr",
                                       last_name="Svoboda")
        self.make_item(self.contacts, RunItem.Action.ERROR, "Petr Svoboda",
                       crm_key=str(person.pk), detail="ErrorInvalidPropertyRequest")
        self.make_item(self.contacts, RunItem.Action.SKIP, "Private lunch",
                       detail="private: not synced")
        self.make_item(self.contacts, RunItem.Action.CONFLICT, "Eva Nová",
                       detail="changed on both sides; kept the values from Exchange")
        page = self.client.get(reverse("portal:run", args=[self.contacts.pk]))
        self.assertContains(page, "Sync run")
        self.assertContains(page, "In the CRM")
        self.assertContains(page, "<td>5</td>", html=False)
        for text in ("Petr Svoboda", "ErrorInvalidPropertyRequest", "private: not synced",
                     "kept the values from Exchange", "Errors (2)"):
            self.assertContains(page, text)
        # A plain user cannot open the admin: the record is named, not linked.
        self.assertNotContains(page, reverse("admin:crm_person_change", args=[person.pk]))
        errors = self.client.get(reverse("portal:run", args=[self.contacts.pk])
                                 + "?action=error")
        self.assertContains(errors, "Petr Svoboda")
        self.assertNotContains(errors, "Private lunch")

    def test_staff_get_a_link_to_the_crm_record(self) -> None:
        self.sign_in(self.bob)
        self.make_item(self.contacts, RunItem.Action.ERROR, "Petr Svoboda", crm_key="42")
        self.make_item(self.calendar, RunItem.Action.ERROR, "Porada", crm_key="43")
        self.assertContains(self.client.get(reverse("portal:run", args=[self.contacts.pk])),
                            reverse("admin:crm_person_change", args=[42]))
        self.assertContains(self.client.get(reverse("portal:run", args=[self.calendar.pk])),
                            reverse("admin:crm_event_change", args=[43]))

    def test_an_analysis_shows_its_planned_items_and_says_it_changed_nothing(self) -> None:
        self.make_item(self.analysis, RunItem.Action.CREATE_REMOTE, "Eva Nová")
        page = self.client.get(reverse("portal:run", args=[self.analysis.pk]))
        self.assertContains(page, "Planned items")
        self.assertContains(page, "Planned changes")
        self.assertContains(page, "An analysis changes nothing")
        self.assertContains(page, "Created in Exchange")
        self.assertContains(page, "Eva Nová")

    def test_a_failed_run_shows_its_message(self) -> None:
        page = self.client.get(reverse("portal:run", args=[self.calendar.pk]))
        self.assertContains(page, "Exchange said 401")
        self.assertContains(page, "Failed")

    def test_a_runs_items_export_as_csv(self) -> None:
        self.make_item(self.contacts, RunItem.Action.ERROR, "Petr Svoboda", crm_key="42",
                       remote_id="AAMkAG=", detail="ErrorInvalidPropertyRequest")
        rows = csv_rows(self.client.get(reverse("portal:run_items_csv",
                                                args=[self.contacts.pk])))
        assert rows == [["Action", "Item", "Detail", "CRM record", "Exchange item"],
                        ["error", "Petr Svoboda", "ErrorInvalidPropertyRequest", "42",
                         "AAMkAG="]]

    def test_text_that_excel_would_run_as_a_formula_is_exported_as_text(self) -> None:
        self.make_item(self.contacts, RunItem.Action.CREATE_CRM, '=HYPERLINK("http://x")',
                       detail="-1+2")
        rows = csv_rows(self.client.get(reverse("portal:run_items_csv",
                                                args=[self.contacts.pk])))
        assert rows[1][1:3] == ["'=HYPERLINK(\"http://x\")", "'-1+2"]


class ChartTestCase(PortalTestCase):
    def test_the_scale_rounds_up_to_one_two_or_five(self) -> None:
        assert [chart.nice_ceiling(v) for v in (0, 1, 2, 3, 7, 10, 11, 180, 501)] == [
            1, 1, 2, 5, 10, 10, 20, 200, 1000]

    def test_bars_stand_on_the_baseline_in_proportion(self) -> None:
        drawn = chart.bar_chart([chart.Point(10, 0, "a"), chart.Point(5, 5, "b")])
        first, second = drawn.columns
        assert first.items.y + first.items.height == drawn.baseline
        assert first.items.height == 2 * second.items.height
        assert second.items.height == second.errors.height and first.errors.height == 0
        assert first.items.x < first.errors.x < second.items.x
        assert [tick.value for tick in drawn.ticks] == [0, 5, 10]

    def test_a_few_runs_fill_the_chart_from_the_right(self) -> None:
        drawn = chart.bar_chart([chart.Point(3, 1, "only")], slots=30)
        (column,) = drawn.columns
        assert column.items.width == drawn.columns[0].errors.width < (
            chart.WIDTH - chart.LEFT) / 30
        assert column.errors.x + column.errors.width > chart.WIDTH - (
            chart.WIDTH - chart.LEFT) / 30

    def test_no_runs_draw_an_empty_chart(self) -> None:
        drawn = chart.bar_chart([])
        assert drawn.columns == [] and [tick.value for tick in drawn.ticks] == [0, 1]


class QuietRunsTestCase(PortalTestCase):
    """Runs a change notice started that changed nothing are folded in the history."""

    def setUp(self) -> None:
        super().setUp()
        self.sign_in(self.dave)
        # 9:10 to 9:45 today, local time: twelve notices, nothing to change.
        self.morning = timezone.make_aware(dt.datetime.combine(
            timezone.localdate() - dt.timedelta(days=1), dt.time(9, 10)))
        self.push = self.make_run(self.daves, trigger="manual", remote_created=300,
                                  started=self.morning - dt.timedelta(minutes=5))
        self.quiet = [self.make_run(self.daves, trigger="change",
                                    started=self.morning + dt.timedelta(minutes=minutes))
                      for minutes in (0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 35)]
        self.edit = self.make_run(self.daves, trigger="change", crm_updated=1,
                                  started=self.morning + dt.timedelta(minutes=50))

    def test_a_stretch_of_quiet_runs_is_one_row_that_opens_to_list_them(self) -> None:
        page = self.client.get(reverse("portal:history"))
        rows = page.context["rows"]
        assert rows[0] == self.edit and rows[2] == self.push
        assert [run.pk for run in rows[1].runs] == [run.pk for run in reversed(self.quiet)]
        start = formats.date_format(self.morning, "SHORT_DATETIME_FORMAT")
        end = formats.time_format(self.morning + dt.timedelta(minutes=35), "TIME_FORMAT")
        self.assertContains(page, f"12 runs with no changes, {start}–{end}")
        self.assertContains(page, "<details>", count=1)
        for run in self.quiet:   # each still reachable once the row is opened
            self.assertContains(page, reverse("portal:run", args=[run.pk]))
        # The table shows three rows, not fourteen.
        body = page.content.decode().split("<tbody>", 1)[1].split("</tbody>", 1)[0]
        assert body.count("<tr") == 3

    def test_a_quiet_run_alone_and_other_triggers_stay_rows_of_their_own(self) -> None:
        Run.objects.filter(pk__in=[run.pk for run in self.quiet[1:]]).delete()
        self.make_run(self.daves, trigger="schedule",   # scheduled: not a notice
                      started=self.morning - dt.timedelta(minutes=20))
        self.make_run(self.daves, trigger="schedule",
                      started=self.morning - dt.timedelta(minutes=30))
        rows = self.client.get(reverse("portal:history")).context["rows"]
        assert all(isinstance(row, Run) for row in rows) and len(rows) == 5

    def test_the_chart_leaves_quiet_runs_out(self) -> None:
        page = self.client.get(reverse("portal:history"))
        assert page.context["chart_runs"] == 2
        self.assertContains(page, 'class="bar-items"', count=2)
