"""The dispatcher, back-off, refused runs and alerts (engine/jobs.py, engine/alerts.py).

Tasks are enqueued for real into django-q2's ORM broker (the test database's queue table) and
read back from it; runs go to ewsim over HTTP where a sync actually runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from engine import jobs, leases
from engine.jobs import backoff, dispatch, record_result, run_job
from engine.models import Agenda, Heartbeat, Job, Run
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from tests.base import BaseTestCase

from .sync_helpers import make_profile


def queued() -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """The tasks waiting in django-q2's ORM queue: (function, args, kwargs)."""
    return sorted((q.func(), tuple(q.args()), q.kwargs()) for q in OrmQ.objects.all())


class DispatchTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.acme_profile = self.make_profile(self.acme, self.bob, "bob@acme.example")

    def test_every_enabled_agenda_of_an_active_profile_has_a_job(self) -> None:
        assert set(Job.objects.filter(profile=self.acme_profile).values_list(
            "agenda", flat=True)) == {Agenda.CONTACTS, Agenda.CALENDAR}
        self.acme_profile.sync_calendar = False
        self.acme_profile.save()
        assert list(Job.objects.values_list("agenda", flat=True)) == [Agenda.CONTACTS]
        self.acme_profile.active = False
        self.acme_profile.save()
        assert not Job.objects.exists()
        self.acme_profile.active = True
        self.acme_profile.sync_calendar = True
        self.acme_profile.save()
        assert Job.objects.count() == 2

    def test_dispatch_enqueues_due_active_unpaused_jobs_once(self) -> None:
        paused = self.make_profile(self.globex, self.charlie, "charlie@globex.example")
        Job.objects.filter(profile=paused, agenda=Agenda.CALENDAR).update(paused=True)
        later = self.make_profile(self.acme, self.dave, "dave@acme.example")
        Job.objects.filter(profile=later).update(
            next_run_at=timezone.now() + dt.timedelta(minutes=5))
        inactive = self.make_profile(self.acme, self.alice, "off@acme.example", active=False)

        before = timezone.now()
        assert dispatch() == 3
        tasks = queued()
        assert tasks == sorted([
            ("engine.jobs.run_job", (self.acme_profile.pk, "calendar"),
             {"dry_run": False, "trigger": "schedule"}),
            ("engine.jobs.run_job", (self.acme_profile.pk, "contacts"),
             {"dry_run": False, "trigger": "schedule"}),
            ("engine.jobs.run_job", (paused.pk, "contacts"),
             {"dry_run": False, "trigger": "schedule"}),
        ])
        assert not Job.objects.filter(profile=inactive).exists()
        # The next run time moved forward by the interval before the task was queued.
        job = Job.objects.get(profile=self.acme_profile, agenda=Agenda.CONTACTS)
        assert job.next_run_at >= before + dt.timedelta(minutes=10)
        assert job.enqueued_at is not None

        # The same minute (or a second dispatcher): nothing is queued twice.
        assert dispatch() == 0
        assert len(OrmQ.objects.all()) == 3

    def test_a_job_still_in_the_queue_is_not_queued_again(self) -> None:
        dispatch()
        Job.objects.update(next_run_at=timezone.now() - dt.timedelta(minutes=1))
        assert dispatch() == 0        # queued, not started yet: no copies stack up
        Job.objects.update(enqueued_at=timezone.now() - dt.timedelta(minutes=30))
        assert dispatch() == 2        # taken for lost after a while, and queued again

    def test_dispatch_writes_the_worker_heartbeat(self) -> None:
        dispatch()
        seen = Heartbeat.objects.get(name=jobs.WORKER_HEARTBEAT).seen_at
        assert timezone.now() - seen < dt.timedelta(seconds=5)

    def test_the_dispatcher_schedule_exists_once_after_migrate(self) -> None:
        jobs.ensure_schedule()
        jobs.ensure_schedule()
        (schedule,) = Schedule.objects.filter(func="engine.jobs.dispatch")
        assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (
            Schedule.MINUTES, 1, -1)

    def test_a_scheduled_task_of_a_paused_job_does_not_run(self) -> None:
        Job.objects.update(paused=True)
        assert run_job(self.acme_profile.pk, "contacts") == Run.Status.PAUSED
        assert list(Run.objects.values_list("status", flat=True)) == [Run.Status.PAUSED]


class BackoffTests(BaseTestCase):
    def test_back_off_doubles_per_failure_and_caps_at_an_hour(self) -> None:
        minutes = [backoff(10, n) / dt.timedelta(minutes=1) for n in range(6)]
        assert minutes == [10, 20, 40, 60, 60, 60]
        assert backoff(7, 100) == dt.timedelta(hours=1)
        # A long interval is never shortened by the cap.
        assert backoff(120, 3) == dt.timedelta(minutes=120)

    def test_failures_push_the_next_run_out_and_a_success_resets(self) -> None:
        profile = self.make_profile(self.acme, self.bob, "bob@acme.example")
        job = Job.objects.get(profile=profile, agenda=Agenda.CONTACTS)
        for failures, minutes in [(1, 20), (2, 40), (3, 60), (4, 60)]:
            now = timezone.now()
            record_result(job, profile, self._run(profile, Run.Status.FAILED, "timed out"))
            job.refresh_from_db()
            assert job.consecutive_failures == failures
            delay = job.next_run_at - now
            assert dt.timedelta(minutes=minutes) <= delay < dt.timedelta(minutes=minutes, seconds=5)
        record_result(job, profile, self._run(profile, Run.Status.PARTIAL))
        job.refresh_from_db()
        assert job.consecutive_failures == 0 and job.last_status == Run.Status.PARTIAL
        assert job.last_success_at is not None
        assert job.next_run_at - timezone.now() <= dt.timedelta(minutes=10)

    def test_a_refused_run_is_not_a_failure(self) -> None:
        profile = self.make_profile(self.acme, self.bob, "bob@acme.example")
        job = Job.objects.get(profile=profile, agenda=Agenda.CONTACTS)
        record_result(job, profile, self._run(profile, Run.Status.FAILED, "boom"))
        job.refresh_from_db()
        record_result(job, profile, self._run(profile, Run.Status.REFUSED))
        job.refresh_from_db()
        assert job.consecutive_failures == 1 and job.last_status == Run.Status.FAILED

    def _run(self, profile: SyncProfile, status: str, message: str = "") -> Run:
        return Run.objects.create(profile=profile, agenda=Agenda.CONTACTS, status=status,
                                  message=message, finished=timezone.now())


@override_settings(ALERT_AFTER_FAILURES=3)
class AlertTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.acme.alert_emails = "ops@acme.example\nBob@example.org"
        self.acme.save()
        self.profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        self.job = Job.objects.get(profile=self.profile, agenda=Agenda.CONTACTS)

    def _record(self, status: str, message: str = "") -> None:
        run = Run.objects.create(profile=self.profile, agenda=Agenda.CONTACTS, status=status,
                                 message=message, finished=timezone.now())
        self.job.refresh_from_db()
        record_result(self.job, self.profile, run)

    def test_one_alert_after_n_failures_and_one_on_recovery(self) -> None:
        self._record(Run.Status.FAILED, "Exchange did not answer in time.")
        self._record(Run.Status.FAILED, "Exchange did not answer in time.")
        assert mail.outbox == []
        self._record(Run.Status.FAILED, "Exchange did not answer in time.")
        (alert,) = mail.outbox
        # Acme's administrator and its extra address, once each; not the plain user dave,
        # not Globex's administrator.
        assert sorted(alert.to) == ["bob@example.org", "ops@acme.example"]
        assert "dave@acme.example" in alert.subject
        assert "3 times" in alert.body and "did not answer" in alert.body
        self._record(Run.Status.FAILED, "Exchange did not answer in time.")
        self._record(Run.Status.FAILED, "Exchange did not answer in time.")
        assert len(mail.outbox) == 1           # once per incident
        self.job.refresh_from_db()
        assert self.job.alerted_at is not None

        self._record(Run.Status.SUCCESS)
        assert len(mail.outbox) == 2
        assert "works again" in mail.outbox[1].subject
        self.job.refresh_from_db()
        assert self.job.alerted_at is None and self.job.consecutive_failures == 0
        self._record(Run.Status.SUCCESS)
        self._record(Run.Status.FAILED, "Exchange did not answer in time.")
        assert len(mail.outbox) == 2           # no incident yet: one failure

    def test_rejected_credentials_alert_at_once(self) -> None:
        self._record(Run.Status.FAILED, "Authentication failed: the server refused the user "
                                        "name or password of 'svc'.")
        (alert,) = mail.outbox
        assert "rejected the credentials" in alert.subject
        self._record(Run.Status.FAILED, "Authentication failed: again")
        assert len(mail.outbox) == 1

    def test_a_refused_run_neither_alerts_nor_recovers(self) -> None:
        for _ in range(3):
            self._record(Run.Status.FAILED, "boom")
        self._record(Run.Status.REFUSED)
        assert len(mail.outbox) == 1
        self.job.refresh_from_db()
        assert self.job.alerted_at is not None


# --- real runs against ewsim -----------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_run_job_syncs_and_records_the_result_on_the_job(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    assert run_job(profile.pk, "contacts") == Run.Status.SUCCESS
    job = Job.objects.get(profile=profile, agenda=Agenda.CONTACTS)
    assert job.last_status == Run.Status.SUCCESS and job.consecutive_failures == 0
    assert job.last_run.trigger == "schedule"
    assert job.next_run_at > timezone.now() + dt.timedelta(minutes=9)


@pytest.mark.django_db(transaction=True)
def test_a_run_refused_by_the_lease_is_not_a_failure(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    assert leases.claim(profile.pk, "contacts", "someone-else")
    before = Job.objects.get(profile=profile, agenda=Agenda.CONTACTS)
    assert run_job(profile.pk, "contacts") == Run.Status.REFUSED
    job = Job.objects.get(pk=before.pk)
    assert job.consecutive_failures == 0 and job.last_status == ""
    assert job.next_run_at == before.next_run_at


@pytest.mark.django_db(transaction=True)
def test_rejected_credentials_fail_the_job_and_alert_the_administrators(
        ewsim: SimHandle) -> None:
    from django.contrib.auth.models import User

    from profiles.models import Membership

    profile = make_profile(ewsim)
    admin = User.objects.create_user("boss", "boss@acme.example", "pw", is_staff=True)
    Membership.objects.create(user=admin, organization=profile.organization, role="admin")
    profile.connection.set_secret("wrong")
    profile.connection.save()
    assert run_job(profile.pk, "contacts") == Run.Status.FAILED
    job = Job.objects.get(profile=profile, agenda=Agenda.CONTACTS)
    assert job.consecutive_failures == 1
    assert "Authentication failed" in job.last_message
    assert job.next_run_at > timezone.now() + dt.timedelta(minutes=19)
    (alert,) = mail.outbox
    assert alert.to == ["boss@acme.example"]


@pytest.mark.django_db(transaction=True)
def test_a_run_that_cannot_start_is_recorded_not_raised(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    profile.connection.kind = "graph"   # no backend yet: fails before the runner starts
    profile.connection.save()
    assert run_job(profile.pk, "contacts") == Run.Status.FAILED
    run = Run.objects.get()
    assert run.status == Run.Status.FAILED and run.message
    assert Job.objects.get(profile=profile, agenda=Agenda.CONTACTS).consecutive_failures == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_a_dead_worker_left_running_is_closed_by_the_next_run(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    now = timezone.now()
    dead = Run.objects.create(profile=profile, agenda=Agenda.CONTACTS,
                              started=now - leases.lease_ttl() - dt.timedelta(seconds=5))
    # Younger than a lease: it might still be claiming its lease, so it is left alone.
    young = Run.objects.create(profile=profile, agenda=Agenda.CONTACTS,
                               started=now - dt.timedelta(seconds=30))
    other_agenda = Run.objects.create(profile=profile, agenda=Agenda.CALENDAR, started=dead.started)

    # A refused run held no lease: it proves nothing about the others.
    assert leases.claim(profile.pk, "contacts", "someone-else")
    assert run_job(profile.pk, "contacts") == Run.Status.REFUSED
    assert Run.objects.get(pk=dead.pk).status == Run.Status.RUNNING
    leases.release(profile.pk, "contacts", "someone-else")

    assert run_job(profile.pk, "contacts") == Run.Status.SUCCESS
    dead.refresh_from_db()
    assert (dead.status, dead.message) == (Run.Status.FAILED, jobs.ABANDONED)
    assert dead.finished is not None
    assert Run.objects.get(pk=young.pk).status == Run.Status.RUNNING
    assert Run.objects.get(pk=other_agenda.pk).status == Run.Status.RUNNING
