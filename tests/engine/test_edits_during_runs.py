"""Users keep working while a run goes on: an edit made on either side during a run is never
lost, whatever the run writes meanwhile (the fault campaign's edits during runs found one)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.utils import timezone

from crm.models import Person
from engine.models import DuplicateCandidate, Lease, Link, Retry, Run, RunItem
from engine.run.journal import Killed
from ewsim.testing import SimHandle
from profiles.models import SyncProfile

from .sync_helpers import exchange_contacts, make_profile, run_contacts
from .test_contacts_sync import add_exchange_contact

pytestmark = pytest.mark.django_db(transaction=True)


def linked_pair(sim: SimHandle, **settings: str) -> tuple[SyncProfile, str, Person]:
    """A contact synced once, so both sides hold it and a link joins them."""
    profile = make_profile(sim)
    for name, value in settings.items():
        setattr(profile, name, value)
    profile.save()
    item_id = add_exchange_contact(sim, "Petr", "Svoboda", "petr@stavby.cz")
    settle(sim, profile)
    return profile, item_id, Person.objects.get()


def set_department(sim: SimHandle, item_id: str, value: str) -> None:
    sim.control.update_item(item_id, xml=f"<t:Contact><t:Department>{value}</t:Department>"
                                         "</t:Contact>")


def set_job_title(person: Person, value: str) -> None:
    """As a CRM form saves the one field a user changed."""
    person = Person.objects.get(pk=person.pk)
    person.job_title = value
    person.save(update_fields=["job_title"])


def killed_run(sim: SimHandle, profile: SyncProfile, checkpoint: Callable[[str], None]
               ) -> None:
    """A run whose worker dies at `checkpoint` (it raises Killed); its lease then expires as
    a dead worker's would."""
    with pytest.raises(Killed):
        run_contacts(sim, profile, checkpoint=checkpoint)
    Lease.objects.filter(profile=profile).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1))


def assert_on_both_sides(sim: SimHandle, item_id: str, person: Person, department: str,
                         job_title: str) -> None:
    in_exchange = exchange_contacts(sim)[item_id]
    person.refresh_from_db()
    assert (in_exchange.department, person.department) == (department, department)
    assert (in_exchange.job_title, person.job_title) == (job_title, job_title)


def settle(sim: SimHandle, profile: SyncProfile) -> None:
    """Runs until one writes nothing: the state users then see on both sides."""
    for _ in range(4):
        run = run_contacts(sim, profile)
        assert run.status in (Run.Status.SUCCESS, Run.Status.PARTIAL), run.message
        if not run.items.exclude(action=RunItem.Action.LINK).exists():
            return
    raise AssertionError("the runs did not settle")


def test_an_exchange_edit_made_while_the_run_writes_the_pair_survives_a_crm_winning_policy(
        ewsim: SimHandle) -> None:
    # Both sides edited before the run (department in Exchange, job title in the CRM). While
    # the run writes the pair, Outlook saves the department again: the run's UpdateItem names
    # a stale ChangeKey and is refused. The CRM already holds the department the run carried
    # over; that is the run's own write, not a CRM user's change, so even with "the CRM wins"
    # it must not overwrite the newer Exchange department next run.
    profile, item_id, person = linked_pair(ewsim, conflict_policy="crm")
    set_department(ewsim, item_id, "Nákup")
    set_job_title(person, "Jednatel")
    edited = []

    def outlook_saves_meanwhile(label: str) -> None:
        if label == "crm write" and not edited:
            edited.append(label)
            set_department(ewsim, item_id, "Prodej")

    run = run_contacts(ewsim, profile, checkpoint=outlook_saves_meanwhile)
    assert run.status == Run.Status.SUCCESS, run.message
    # The refused UpdateItem, tried again next run (and the Exchange edit, read back at the
    # run's end, waits for that run too: the CRM holds a change not yet carried).
    assert run.items.filter(action=RunItem.Action.CONFLICT,
                            detail__startswith="Changed in Exchange since").count() == 1
    assert Retry.objects.filter(profile=profile).exists()
    settle(ewsim, profile)
    assert_on_both_sides(ewsim, item_id, person, "Prodej", "Jednatel")


def test_a_worker_killed_after_writing_the_crm_half_of_a_pair_loses_no_exchange_edit(
        ewsim: SimHandle) -> None:
    # As above, but the worker dies once Exchange has refused the stale write, before the run
    # recorded anything more (and before it read Exchange again). The department the run
    # wrote into the CRM is on record with the CRM write itself, so the next run does not
    # take it for a CRM user's edit that "the CRM wins" would carry back over Outlook's.
    profile, item_id, person = linked_pair(ewsim, conflict_policy="crm")
    set_department(ewsim, item_id, "Nákup")
    set_job_title(person, "Jednatel")

    def outlook_saves_then_the_worker_dies(label: str) -> None:
        if label == "crm write":
            set_department(ewsim, item_id, "Prodej")
        if label == "remote writes":
            raise Killed(label)

    killed_run(ewsim, profile, outlook_saves_then_the_worker_dies)
    settle(ewsim, profile)
    assert_on_both_sides(ewsim, item_id, person, "Prodej", "Jednatel")


def test_a_crm_edit_made_while_the_run_writes_the_same_person_reaches_exchange(
        ewsim: SimHandle) -> None:
    # A CRM user edits the job title after the run noted the CRM's revision, and the run then
    # carries Exchange's new department into the same person. The run's write must not pass
    # for the only change since (its revision is the newest): the job title goes to Exchange.
    profile, item_id, person = linked_pair(ewsim)
    set_department(ewsim, item_id, "Nákup")

    def crm_user_saves_meanwhile(message: str) -> None:
        set_job_title(person, "Jednatel")

    run = run_contacts(ewsim, profile, progress=crm_user_saves_meanwhile)
    assert run.status in (Run.Status.SUCCESS, Run.Status.PARTIAL), run.message
    settle(ewsim, profile)
    assert_on_both_sides(ewsim, item_id, person, "Nákup", "Jednatel")
    assert Link.objects.get(profile=profile).state == Link.State.ACTIVE


def test_a_crm_edit_of_the_field_the_run_is_writing_is_a_conflict_not_overwritten(
        ewsim: SimHandle) -> None:
    # The same field edited in Exchange before the run and in the CRM while it runs: the CRM's
    # edit is the newer one, so "newest wins" keeps it on both sides; the run must not write
    # Exchange's older value over it unseen.
    profile, item_id, person = linked_pair(ewsim)
    set_department(ewsim, item_id, "Nákup")

    def crm_user_saves_meanwhile(message: str) -> None:
        person_now = Person.objects.get(pk=person.pk)
        person_now.department = "Servis"
        person_now.save(update_fields=["department"])

    run_contacts(ewsim, profile, progress=crm_user_saves_meanwhile)
    settle(ewsim, profile)
    person.refresh_from_db()
    assert (exchange_contacts(ewsim)[item_id].department, person.department) == \
        ("Servis", "Servis")


@pytest.mark.parametrize("dies_at", ["remote writes", "link recorded"])
def test_a_worker_killed_while_matching_a_pair_leaves_no_duplicate_candidate(
        ewsim: SimHandle, dies_at: str) -> None:
    # The first sync matches a CRM person and an Exchange contact by their one shared address
    # and fills each side's missing field; the worker dies after the CRM write (and Exchange's)
    # but before the match is recorded. The next run finds the pair linked as far as it got,
    # not a second candidate for the same person.
    profile = make_profile(ewsim)
    person = Person.objects.create(organization_id=profile.organization_id, first_name="Petr",
                                   last_name="Svoboda", email1="petr@stavby.cz",
                                   job_title="Jednatel")
    item_id = add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    set_department(ewsim, item_id, "Nákup")

    def dies(label: str) -> None:
        if label == dies_at:
            raise Killed(label)

    killed_run(ewsim, profile, dies)
    settle(ewsim, profile)
    person.refresh_from_db()
    in_exchange = exchange_contacts(ewsim)
    assert list(in_exchange) == [item_id]
    assert (in_exchange[item_id].department, person.department) == ("Nákup", "Nákup")
    assert (in_exchange[item_id].job_title, person.job_title) == ("Jednatel", "Jednatel")
    assert not DuplicateCandidate.objects.filter(profile=profile).exists()
    assert Person.objects.count() == 1
    assert Link.objects.get(profile=profile).remote_id == item_id
