"""The dashboard: last and next run per agenda, live progress, Sync now and Analyze."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any
from unittest import mock

from django.urls import reverse
from django.utils import formats, timezone
from django_q.models import OrmQ

from engine.models import Job, Lease, Run
from tests.portal.base import PortalTestCase


def queued() -> list[tuple[Any, ...]]:
    return sorted((*q.args(), q.kwargs()["dry_run"], q.kwargs()["trigger"])
                  for q in OrmQ.objects.all())


class DashboardTestCase(PortalTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.sign_in(self.dave)

    def _status(self) -> dict[str, Any]:
        response = self.client.get(reverse("portal:status") + f"?profile={self.daves.pk}")
        assert response.status_code == 200
        assert "no-cache" in response["Cache-Control"]
        return {row["key"]: row for row in response.json()["rows"]} | {
            "poll": response.json()["poll"]}

    def _running(self, **fields: Any) -> Run:
        run = self.make_run(self.daves, status=Run.Status.RUNNING, finished=None,
                            started=timezone.now(), **fields)
        Lease.objects.create(profile=self.daves, agenda="contacts", holder="worker-1",
                             expires_at=timezone.now() + dt.timedelta(minutes=5))
        return run

    def test_it_shows_each_enabled_agendas_last_run_and_next_run(self) -> None:
        self.make_run(self.daves, crm_created=3, remote_updated=2, errors=1,
                      started=timezone.now() - dt.timedelta(hours=2))
        self.make_run(self.daves, status=Run.Status.REFUSED)   # not a result
        Job.objects.filter(profile=self.daves, agenda="calendar").update(
            next_run_at=timezone.now() + dt.timedelta(minutes=7))
        page = self.client.get(reverse("portal:dashboard"))
        self.assertContains(page, "CRM: created 3, updated 0, deleted 0")
        self.assertContains(page, "Exchange: created 0, updated 2, deleted 0")
        self.assertContains(page, "1 error")
        self.assertContains(page, "Success")
        self.assertContains(page, "Never run yet")       # the calendar
        self.assertNotContains(page, "E-mail import")    # switched off for this profile
        self.assertContains(page, f'data-row="{self.daves.pk}-calendar"')
        calendar_next = Job.objects.get(profile=self.daves, agenda="calendar").next_run_at
        self.assertContains(page, f'datetime="{timezone.localtime(calendar_next):%Y-%m-%dT%H}')
        self.assertContains(page, "Due now")             # the contacts job is due
        self.assertContains(page, 'name="csrfmiddlewaretoken"')

    def test_a_run_that_handled_all_it_knows_of_is_not_shown_as_all_done(self) -> None:
        self._running(progress_done=100, progress_total=100)
        page = self.client.get(reverse("portal:dashboard"))
        self.assertNotContains(page, "100 of 100 items")
        self.assertContains(page, "100 items done")

    def test_a_paused_job_and_a_switched_off_profile_say_so(self) -> None:
        Job.objects.filter(profile=self.daves).update(paused=True)
        self.assertContains(self.client.get(reverse("portal:dashboard")),
                            "Paused by the administrator")
        self.daves.active = False
        self.daves.save()
        page = self.client.get(reverse("portal:dashboard"))
        self.assertContains(page, "the profile is switched off")

    def test_a_running_sync_shows_its_progress_and_the_status_says_to_poll_often(
            self) -> None:
        self._running(progress_done=40, progress_total=120, progress_note="Reading Inbox")
        page = self.client.get(reverse("portal:dashboard"))
        self.assertContains(page, "40 of 120 items")
        self.assertContains(
            page, f'<progress id="progress-{self.daves.pk}-contacts" max="120" value="40">')
        self.assertContains(page, 'data-busy="1"')
        status = self._status()
        contacts = status[f"{self.daves.pk}-contacts"]
        assert contacts["busy"] is True and "40 of 120 items" in contacts["cells"]["now"]
        assert "Reading Inbox" in contacts["cells"]["now"]
        assert status[f"{self.daves.pk}-calendar"]["busy"] is False
        assert status["poll"] == 1000

    def test_progress_without_a_known_total_counts_what_is_done(self) -> None:
        self._running(progress_done=7)
        now = self._status()[f"{self.daves.pk}-contacts"]["cells"]["now"]
        assert "7 items done" in now and "<progress " in now and "max=" not in now

    def test_a_run_whose_worker_died_is_not_shown_as_running(self) -> None:
        self.make_run(self.daves, status=Run.Status.RUNNING, finished=None)   # no lease
        status = self._status()
        assert status[f"{self.daves.pk}-contacts"]["busy"] is False
        assert status["poll"] == 15000

    def test_sync_now_queues_every_enabled_agenda_and_the_row_says_queued(self) -> None:
        response = self.client.post(reverse("portal:sync_now", args=[self.daves.pk]))
        self.assertRedirects(response, reverse("portal:dashboard") + f"#profile-{self.daves.pk}",
                             fetch_redirect_response=False)
        assert queued() == [(self.daves.pk, "calendar", False, "manual"),
                            (self.daves.pk, "contacts", False, "manual")]
        assert not Run.objects.filter(profile=self.daves).exists()   # a worker runs it
        page = self.client.get(reverse("portal:dashboard"))
        self.assertContains(page, "Sync of dave@acme.example queued (2 agendas)")
        self.assertContains(page, "Queued, waiting for a worker", count=2)
        # Once a worker has started the run, the row shows the run instead.
        self._running(progress_done=1)
        status = self._status()
        assert "Syncing" in status[f"{self.daves.pk}-contacts"]["cells"]["now"]
        assert "Queued" in status[f"{self.daves.pk}-calendar"]["cells"]["now"]

    def test_analyze_queues_dry_runs_and_one_agenda_can_be_chosen(self) -> None:
        self.client.post(reverse("portal:analyze", args=[self.daves.pk]),
                         {"agenda": "contacts"})
        assert queued() == [(self.daves.pk, "contacts", True, "manual")]
        response = self.client.post(reverse("portal:sync_now", args=[self.daves.pk]),
                                    {"agenda": "mail"})   # switched off for this profile
        assert response.status_code == 404
        assert len(queued()) == 1

    def test_a_profile_with_no_agenda_switched_on_queues_nothing(self) -> None:
        self.daves.sync_contacts = self.daves.sync_calendar = False
        self.daves.save()
        response = self.client.post(reverse("portal:sync_now", args=[self.daves.pk]),
                                    follow=True)
        self.assertContains(response, "No agenda is switched on for dave@acme.example.")
        assert not OrmQ.objects.exists()

    def test_sync_now_of_a_paused_profile_says_it_is_paused_and_queues_nothing(self) -> None:
        Job.objects.filter(profile=self.daves).update(paused=True)
        for name in ("portal:sync_now", "portal:analyze"):
            response = self.client.post(reverse(name, args=[self.daves.pk]), follow=True)
            self.assertContains(response, "dave@acme.example is paused by your administrator: "
                                          "nothing was queued.")
            self.assertNotContains(response, "queued (")
        assert not OrmQ.objects.exists()

    def test_sync_now_queues_the_agendas_that_are_not_paused(self) -> None:
        Job.objects.filter(profile=self.daves, agenda="calendar").update(paused=True)
        response = self.client.post(reverse("portal:sync_now", args=[self.daves.pk]),
                                    follow=True)
        self.assertContains(response, "Not queued, paused by your administrator: Calendar "
                                      "(dave@acme.example).")
        self.assertContains(response, "Sync of dave@acme.example queued (1 agenda)")
        assert queued() == [(self.daves.pk, "contacts", False, "manual")]

    def test_a_run_that_did_not_start_for_the_pause_does_not_hide_the_last_result(
            self) -> None:
        self.make_run(self.daves, crm_created=3, started=timezone.now() - dt.timedelta(hours=1))
        self.make_run(self.daves, status=Run.Status.PAUSED)
        self.assertContains(self.client.get(reverse("portal:dashboard")),
                            "CRM: created 3, updated 0, deleted 0")

    def test_a_broken_queue_is_reported_without_details(self) -> None:
        with mock.patch("engine.jobs.async_task", side_effect=OSError("redis:6379 refused")), \
                self.assertLogs("portal.dashboard", "ERROR"):
            response = self.client.post(reverse("portal:sync_now", args=[self.daves.pk]),
                                        follow=True)
        self.assertContains(response, "The run could not be queued.")
        self.assertNotContains(response, "redis:6379")

    def test_an_administrator_sees_whose_profile_each_is(self) -> None:
        self.sign_in(self.bob)
        page = self.client.get(reverse("portal:dashboard"))
        self.assertContains(page, "dave · Acme")
        self.assertContains(page, "eve · Acme")

    def test_a_user_without_profiles_is_told_who_sets_them_up(self) -> None:
        self.sign_in(self.bob)
        self.daves.delete()
        self.eves.delete()
        self.assertContains(self.client.get(reverse("portal:dashboard")),
                            "You have no sync profile yet")


class DashboardLastRunTestCase(PortalTestCase):
    """What "last run" shows: the run that did something, and why one failed."""

    def setUp(self) -> None:
        super().setUp()
        self.sign_in(self.dave)
        self.now = timezone.now()

    def _last_cell(self) -> str:
        response = self.client.get(reverse("portal:status") + f"?profile={self.daves.pk}")
        rows = {row["key"]: row for row in response.json()["rows"]}
        return rows[f"{self.daves.pk}-contacts"]["cells"]["last"]

    def _notified(self, minutes_ago: int, **counts: Any) -> Run:
        return self.make_run(self.daves, trigger="change", **counts,
                             started=self.now - dt.timedelta(minutes=minutes_ago))

    def test_runs_a_notice_started_that_changed_nothing_do_not_hide_the_one_that_did(
            self) -> None:
        push = self.make_run(self.daves, trigger="manual", remote_created=300,
                             started=self.now - dt.timedelta(minutes=40))
        for minutes in range(35, 10, -2):   # 13 notices, nothing to change
            self._notified(minutes)
        newest = self._notified(11)
        page = self.client.get(reverse("portal:dashboard"))
        self.assertContains(page, "Exchange: created 300, updated 0, deleted 0")
        self.assertNotContains(page, "Exchange: created 0, updated 0, deleted 0")
        self.assertContains(page, reverse("portal:run", args=[push.pk]))
        self.assertContains(page, "Since then 14 runs after change notices found nothing "
                                  "to change")
        when = formats.date_format(timezone.localtime(newest.started),
                                   "SHORT_DATETIME_FORMAT")
        assert f"the last at {when}" in self._last_cell()
        # The live update of the row says the same.
        assert "created 300" in self._last_cell()

    def test_a_notice_run_that_changed_something_is_the_last_run(self) -> None:
        self.make_run(self.daves, trigger="manual", remote_created=300,
                      started=self.now - dt.timedelta(minutes=40))
        self._notified(20)
        self._notified(10, crm_updated=1)
        cell = self._last_cell()
        assert "CRM: created 0, updated 1, deleted 0" in cell
        assert "found nothing to change" not in cell

    def test_a_failed_or_partial_notice_run_is_never_hidden(self) -> None:
        self.make_run(self.daves, remote_created=300,
                      started=self.now - dt.timedelta(minutes=40))
        self._notified(10, status=Run.Status.FAILED, message="Exchange refused the sign-in.")
        assert "Exchange refused the sign-in." in self._last_cell()

    def test_only_quiet_runs_show_the_newest_of_them(self) -> None:
        self._notified(20)
        newest = self._notified(10)
        cell = self._last_cell()
        assert reverse("portal:run", args=[newest.pk]) in cell
        assert "Never run yet" not in cell and "found nothing to change" not in cell

    def test_a_failed_last_run_says_why_in_one_shortened_line(self) -> None:
        message = ("The mailbox server refused the sign-in (401): check the service "
                   "account's password in the mailbox connection, then try again. " * 3
                   + "\nTraceback details follow")
        run = self.make_run(self.daves, status=Run.Status.FAILED, message=message)
        page = self.client.get(reverse("portal:dashboard"))
        self.assertContains(page, "Failed")
        self.assertContains(page, '<span class="why" lang="en"')
        why = html.unescape(page.content.decode().split('<span class="why"', 1)[1]
                            .split(">", 1)[1].split("</span>", 1)[0])
        assert why.startswith("The mailbox server refused the sign-in (401)")
        assert why.endswith("…") and len(why) <= 120 and "\n" not in why
        assert "Traceback" not in why
        self.assertContains(page, reverse("portal:run", args=[run.pk]))

    def test_a_successful_run_says_no_why(self) -> None:
        self.make_run(self.daves, message="Read 12 changes.")
        self.assertNotContains(self.client.get(reverse("portal:dashboard")), 'class="why"')
