"""Pause: a paused agenda does not run at all, however its run was asked for, until Resume.

Real runs against ewsim over HTTP: "does not run" is checked on both sides (nothing written
to Exchange nor to the CRM), and on what the history and the job record."""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import OrmQ

from crm.models import Person
from engine import pausing
from engine.jobs import dispatch, enqueue, run_job
from engine.models import Agenda, Job, Run
from ewsim.testing import SimHandle
from profiles.models import SyncProfile

from .listen_helpers import new_contact, queued_for, streamed, until
from .sync_helpers import exchange_contacts, make_profile

pytestmark = pytest.mark.django_db(transaction=True)


def _profile_with_work(sim: SimHandle) -> SyncProfile:
    """A profile whose next contacts sync would write one person to Exchange."""
    profile = make_profile(sim)
    Person.objects.create(organization_id=profile.organization_id, first_name="Eva",
                          email1="eva@acme.cz")
    return profile


def _assert_nothing_ran(sim: SimHandle, run_status: str | None) -> Run:
    """Exchange untouched; the run recorded as not started, with why."""
    assert exchange_contacts(sim) == {}
    run = Run.objects.get()
    assert (run.status, run.finished is not None) == (Run.Status.PAUSED, True)
    assert "paused" in run.message and "Resume" in run.message
    assert run_status == Run.Status.PAUSED
    return run


@pytest.mark.parametrize("trigger", ["schedule", "change", "manual", "resync", "approval"])
def test_a_run_queued_before_the_pause_records_why_and_does_nothing(
        ewsim: SimHandle, trigger: str) -> None:
    profile = _profile_with_work(ewsim)
    enqueue(profile, Agenda.CONTACTS, trigger=trigger)   # waits in the queue...
    pausing.set_paused([profile], True)                  # ...when the pause comes
    job = Job.objects.get(profile=profile, agenda=Agenda.CONTACTS)
    (task,) = OrmQ.objects.all()
    run = _assert_nothing_ran(ewsim, run_job(*task.args(), **task.kwargs()))
    assert run.trigger == trigger
    after = Job.objects.get(pk=job.pk)   # not a result: no failure, no new time, no alert
    assert (after.next_run_at, after.consecutive_failures, after.last_run) == (
        job.next_run_at, 0, None)


def test_resume_lets_runs_through_again(ewsim: SimHandle) -> None:
    profile = _profile_with_work(ewsim)
    pausing.set_paused([profile], True)
    assert run_job(profile.pk, Agenda.CONTACTS, trigger="manual") == Run.Status.PAUSED
    pausing.set_paused([profile], False)
    assert run_job(profile.pk, Agenda.CONTACTS, trigger="manual") == Run.Status.SUCCESS
    assert len(exchange_contacts(ewsim)) == 1


def test_the_schedule_queues_nothing_for_a_paused_agenda(ewsim: SimHandle) -> None:
    profile = _profile_with_work(ewsim)
    Job.objects.filter(profile=profile).update(next_run_at=timezone.now())   # due
    pausing.set_paused([profile], True)
    assert dispatch() == 0 and not OrmQ.objects.exists()
    pausing.set_paused([profile], False)
    assert dispatch() == 2


def test_one_paused_agenda_leaves_the_others_running(ewsim: SimHandle) -> None:
    profile = _profile_with_work(ewsim)
    Job.objects.filter(profile=profile, agenda=Agenda.CALENDAR).update(paused=True)
    assert run_job(profile.pk, Agenda.CALENDAR, trigger="manual") == Run.Status.PAUSED
    assert run_job(profile.pk, Agenda.CONTACTS, trigger="manual") == Run.Status.SUCCESS


def test_the_syncnow_command_says_the_agenda_is_paused(ewsim: SimHandle) -> None:
    profile = _profile_with_work(ewsim)
    pausing.set_paused([profile], True)
    with pytest.raises(CommandError, match="paused"):
        call_command("syncnow", profile.mailbox, stdout=io.StringIO())
    assert exchange_contacts(ewsim) == {}


def test_the_listener_queues_nothing_for_a_paused_profile(ewsim: SimHandle,
                                                          listen) -> None:  # type: ignore[no-untyped-def]
    profile = make_profile(ewsim)
    pausing.set_paused([profile], True)
    _, queued = listen(minute_seconds=2.0)
    until(lambda: ewsim.user in streamed(ewsim), "the watcher subscribed")
    new_contact(ewsim, ewsim.user)                                        # Exchange side
    Person.objects.create(organization_id=profile.organization_id, first_name="Eva")  # CRM
    time.sleep(1.5)   # far beyond the debounce: anything queued would be there
    assert queued == []
    pausing.set_paused([profile], False)
    new_contact(ewsim, ewsim.user)
    until(lambda: queued_for(queued, profile), "a contacts sync after Resume")
