"""A scheduled run that finds nothing to do (the steady state of an installation: at 10,000
profiles, 20,000 of them every interval) costs a bounded number of SQL statements, the same
however many profiles the installation has, and still leaves its run in the history.

Real runs: the worker's task (`engine.jobs.run_job`) against ewsim over HTTP, each profile in
an organization of its own reaching its mailbox through a service account.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.models import CrmUser
from engine import leases
from engine.jobs import run_job
from engine.models import Agenda, Job, Lease, Run
from ewsim.testing import SimHandle
from profiles.models import MailboxConnection, Organization, SyncProfile

from .sync_helpers import SERVICE, SERVICE_PASSWORD

AGENDAS = (Agenda.CONTACTS, Agenda.CALENDAR)
# The statements of one no-change run of either agenda: the task's reads (profile with its
# settings, job), the pause check, the CRM connection and binding, the run row (insert,
# progress, end), the lease (claim, release), the folder state, the first-run check, the
# CRM's cursor and changes, retries, decisions, parked items, waiting deletions, category
# pairings (calendar), the dead runs' sweep, the job's result. 29-30 (and two heartbeats)
# before they were counted.
MAX_STATEMENTS = 23


def add_profile(sim: SimHandle, i: int) -> SyncProfile:
    mailbox = f"mailbox{i}@example.com"
    sim.control.add_user(mailbox, f"secret-{i}")
    organization = Organization.objects.create(name=f"Customer {i}")
    mailbox_connection = MailboxConnection(organization=organization, name="ewsim",
                                           ews_url=sim.url, auth_type="basic", username=SERVICE)
    mailbox_connection.set_secret(SERVICE_PASSWORD)
    mailbox_connection.save()
    user = User.objects.create_user(f"user{i}", mailbox, "pw")
    crm_user = CrmUser.objects.create(organization=organization, name=f"User {i}",
                                      login=f"user{i}")
    return SyncProfile.objects.create(organization=organization, user=user, mailbox=mailbox,
                                      crm_user=crm_user, connection=mailbox_connection)


def statements_of_a_run(profile: SyncProfile, agenda: str) -> int:
    """Not counting the worker's heartbeat, which a process writes every few seconds, not
    per run (engine.jobs.beat_now_and_then)."""
    with CaptureQueriesContext(connection) as captured:
        assert run_job(profile.pk, agenda) == Run.Status.SUCCESS
    return sum(1 for query in captured.captured_queries
               if "engine_heartbeat" not in query["sql"])


@pytest.mark.django_db(transaction=True)
def test_a_no_change_run_costs_the_same_few_statements_at_any_number_of_profiles(
        ewsim: SimHandle) -> None:
    ewsim.control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
    first = add_profile(ewsim, 0)
    for agenda in AGENDAS:
        run_job(first.pk, agenda)   # the first sync
    alone = {agenda: statements_of_a_run(first, agenda) for agenda in AGENDAS}

    for i in range(1, 6):
        other = add_profile(ewsim, i)
        for agenda in AGENDAS:
            run_job(other.pk, agenda)
            run_job(other.pk, agenda)
    among_many = {agenda: statements_of_a_run(first, agenda) for agenda in AGENDAS}

    assert among_many == alone
    assert max(alone.values()) <= MAX_STATEMENTS, alone


@pytest.mark.django_db(transaction=True)
def test_a_no_change_run_is_in_the_history_and_holds_its_lease_while_it_runs(
        ewsim: SimHandle) -> None:
    ewsim.control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
    profile = add_profile(ewsim, 0)
    run_job(profile.pk, Agenda.CONTACTS)
    assert run_job(profile.pk, Agenda.CONTACTS) == Run.Status.SUCCESS
    quiet = Run.objects.filter(profile=profile, agenda=Agenda.CONTACTS).latest("pk")
    assert (quiet.status, quiet.trigger, quiet.requests) == (Run.Status.SUCCESS, "schedule", 1)
    assert quiet.finished is not None
    assert Job.objects.get(profile=profile, agenda=Agenda.CONTACTS).last_run == quiet
    # Released at the end, and a lease someone else holds still refuses the next run.
    lease = Lease.objects.get(profile=profile, agenda=Agenda.CONTACTS)
    assert lease.holder == ""
    assert leases.claim(profile.pk, Agenda.CONTACTS, "another worker")
    assert run_job(profile.pk, Agenda.CONTACTS) == Run.Status.REFUSED
