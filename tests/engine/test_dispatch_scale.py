"""The dispatcher at scale (engine/jobs.py): what is due is read in one query and claimed in
bulk, so dispatching 20,000 jobs costs a few statements per 500 jobs, not two per job; the
claim still gives each due job to one dispatcher only.

Tasks go for real into django-q2's ORM broker (the test database's queue table): one INSERT
per task there is the broker's own cost, counted apart.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import OrmQ

from engine import jobs
from engine.jobs import DueJob, claim_due, dispatch
from engine.models import Agenda, Job
from profiles.models import SyncProfile
from tests.base import BaseTestCase


class DispatchAtScaleTests(BaseTestCase):
    def make_profiles(self, count: int, first: int = 0) -> None:
        for i in range(first, first + count):
            self.make_profile(self.acme, self.dave, f"user{i}@acme.example")

    def dispatch_counted(self) -> tuple[int, int, int]:
        """(jobs enqueued, statements of the dispatcher's own, tasks the broker stored)."""
        with CaptureQueriesContext(connection) as captured:
            enqueued = dispatch()
        own = [q for q in captured.captured_queries if "django_q_ormq" not in q["sql"]]
        return enqueued, len(own), OrmQ.objects.count()

    def test_the_dispatchers_statements_do_not_grow_with_the_due_jobs(self) -> None:
        jobs.beat()   # the heartbeat row exists, as after the first minute
        self.make_profiles(3)
        few, few_statements, few_tasks = self.dispatch_counted()
        OrmQ.objects.all().delete()
        self.make_profiles(30, first=3)
        Job.objects.update(next_run_at=timezone.now() - dt.timedelta(minutes=1),
                           enqueued_at=None)
        many, many_statements, many_tasks = self.dispatch_counted()
        assert (few, few_tasks) == (6, 6)
        assert (many, many_tasks) == (66, 66)
        # Heartbeat, jobs reconciled, what is due, one claim: the same for 6 jobs and 66.
        assert many_statements == few_statements <= 5

    def test_scheduled_tasks_leave_their_success_to_the_run_history(self) -> None:
        # Not one django-q2 result per run as well: its single monitor process pruning the
        # stored results on every save was the cluster's bottleneck.
        self.make_profiles(2)
        assert dispatch() == 4
        assert [q.task.get("save") for q in OrmQ.objects.all()] == [False] * 4
        jobs.enqueue(SyncProfile.objects.first(), Agenda.CONTACTS, trigger="manual")
        assert sorted(str(q.task.get("save")) for q in OrmQ.objects.all()) == [
            "False", "False", "False", "False", "None"]

    def test_a_job_is_claimed_by_one_dispatcher_only(self) -> None:
        self.make_profiles(2)
        now = timezone.now()
        due = [DueJob(pk, profile_id, agenda, "", next_run_at, None)
               for pk, profile_id, agenda, next_run_at in Job.objects.values_list(
                   "pk", "profile_id", "agenda", "next_run_at")]
        pushed_to = now + dt.timedelta(minutes=10)
        # Two dispatchers read the same due jobs; the first one's UPDATE takes them all.
        assert claim_due(due, now, pushed_to) == {job.pk for job in due}
        assert claim_due(due, now + dt.timedelta(seconds=1), pushed_to) == set()
        assert set(Job.objects.values_list("next_run_at", flat=True)) == {pushed_to}
        assert set(Job.objects.values_list("enqueued_at", flat=True)) == {now}

    def test_a_job_paused_or_no_longer_due_since_it_was_read_is_not_claimed(self) -> None:
        self.make_profiles(1)
        now = timezone.now()
        contacts = Job.objects.get(agenda=Agenda.CONTACTS)
        calendar = Job.objects.get(agenda=Agenda.CALENDAR)
        read = [DueJob(job.pk, job.profile_id, job.agenda, "", job.next_run_at, None)
                for job in (contacts, calendar)]
        Job.objects.filter(pk=contacts.pk).update(paused=True)
        Job.objects.filter(pk=calendar.pk).update(next_run_at=now + dt.timedelta(minutes=3))
        assert claim_due(read, now, now + dt.timedelta(minutes=10)) == set()

    def test_each_job_moves_on_by_its_own_back_off(self) -> None:
        self.make_profiles(1)
        Job.objects.filter(agenda=Agenda.CALENDAR).update(consecutive_failures=2)
        before = timezone.now()
        assert dispatch() == 2
        after = timezone.now()
        contacts = Job.objects.get(agenda=Agenda.CONTACTS).next_run_at
        calendar = Job.objects.get(agenda=Agenda.CALENDAR).next_run_at
        interval = dt.timedelta(minutes=SyncProfile.objects.get().interval_minutes)
        assert before + interval <= contacts <= after + interval
        assert before + 4 * interval <= calendar <= after + 4 * interval

    def test_a_job_whose_task_could_not_be_queued_is_due_again(self) -> None:
        self.make_profiles(1)
        before = set(Job.objects.values_list("pk", "next_run_at", "enqueued_at"))

        def refuse(*args: object, **kwargs: object) -> str:
            raise ConnectionError("the broker is down")

        original = jobs.async_task
        jobs.async_task = refuse
        try:
            assert dispatch() == 0
        finally:
            jobs.async_task = original
        assert set(Job.objects.values_list("pk", "next_run_at", "enqueued_at")) == before
        assert dispatch() == 2
