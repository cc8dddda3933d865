"""The run after a first sync does not read the first run's own writes back: neither its CRM
writes (the CRM cursor it stores is past them) nor its Exchange writes (the sync state is).
A change somebody else makes while a run writes is still read by the next run."""

from __future__ import annotations

import pytest

from crm.models import Person
from engine.crmstore.builtin import BuiltinCrm
from engine.models import FolderState, Run
from engine.records import Kind
from ewsim.testing import SimHandle
from profiles.models import SyncProfile

from .sync_helpers import add_contact, exchange_contacts, make_profile, run_contacts

pytestmark = pytest.mark.django_db(transaction=True)

# More than one page (engine.run.executor.BATCH): the run writes the CRM in several batches.
CONTACTS = 150


def crm_changes_next_run_reads(profile: SyncProfile) -> list[str]:
    state = FolderState.objects.get(profile=profile, agenda="contacts")
    crm = BuiltinCrm(profile.organization_id)
    return [change.key for change in crm.changes_since(Kind.CONTACTS, state.crm_cursor)]


def exchange_requests_of(sim: SimHandle, profile: SyncProfile) -> tuple[Run, int]:
    sim.control.reset_counters()
    run = run_contacts(sim, profile)
    return run, sum(sim.control.counters().values())


def assert_nothing_to_do(sim: SimHandle, profile: SyncProfile) -> None:
    """What a run with nothing changed on either side reads: no CRM change, one request."""
    assert crm_changes_next_run_reads(profile) == []
    run, requests = exchange_requests_of(sim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert not run.items.exists()
    assert requests == 1     # SyncFolderItems: "no changes"


def test_the_run_after_a_first_import_reads_none_of_its_crm_writes(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    for i in range(CONTACTS):
        add_contact(ewsim, f"Given{i}", f"Surname{i}", email=f"person{i}@example.com")
    run = run_contacts(ewsim, profile)
    assert (run.status, run.crm_created) == (Run.Status.SUCCESS, CONTACTS), run.message
    assert_nothing_to_do(ewsim, profile)


def test_the_run_after_a_first_two_way_sync_reads_none_of_its_writes(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    for i in range(CONTACTS):
        Person.objects.create(organization_id=profile.organization_id, first_name=f"Crm{i}",
                              last_name="Person", email1=f"crm{i}@example.com")
    for i in range(20):
        add_contact(ewsim, f"Ews{i}", "Contact", email=f"ews{i}@example.com")
    # Five on both sides: linked, and each side's missing job title filled from the other.
    for i in range(5):
        add_contact(ewsim, f"Crm{i}", "Person", email=f"crm{i}@example.com",
                    job_title="Nákup")
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.crm_created, run.remote_created, run.linked) == (20, CONTACTS - 5, 5)
    assert Person.objects.filter(job_title="Nákup").count() == 5
    assert_nothing_to_do(ewsim, profile)


def test_a_crm_edit_made_while_the_run_writes_is_read_by_the_next_run(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    for i in range(CONTACTS):
        add_contact(ewsim, f"Given{i}", f"Surname{i}", email=f"person{i}@example.com")
    edited: list[Person] = []

    def a_user_works_in_the_crm_meanwhile(label: str) -> None:
        # After the first batch: the run has created a hundred persons and goes on to create
        # the rest. A user edits one of those just created and adds a person of their own.
        if label == "remote batch handled" and not edited:
            person = Person.objects.get(email1="person7@example.com")
            person.job_title = "Jednatel"
            person.save()
            edited.append(person)
            edited.append(Person.objects.create(organization_id=profile.organization_id,
                                                first_name="Nový", last_name="Zákazník",
                                                email1="novy@example.com"))

    run = run_contacts(ewsim, profile, checkpoint=a_user_works_in_the_crm_meanwhile)
    assert (run.status, run.crm_created) == (Run.Status.SUCCESS, CONTACTS), run.message
    # The cursor stops before the user's changes: the persons the run created after them
    # are read back once more (and found as written), the user's changes are not skipped.
    pending = crm_changes_next_run_reads(profile)
    assert {str(p.pk) for p in edited} <= set(pending)
    assert len(pending) < CONTACTS
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.remote_updated, run.remote_created) == (1, 1)
    in_exchange = {r.email1: r for r in exchange_contacts(ewsim).values()}
    assert in_exchange["person7@example.com"].job_title == "Jednatel"
    assert "novy@example.com" in in_exchange
    assert_nothing_to_do(ewsim, profile)
