"""Moving is not deleting (PRODUCT.md §5): an item moved out of the synced folder — archived,
filed by a rule, dragged elsewhere — leaves the scope, and its CRM record stays; only an item
in Deleted Items, or gone from the mailbox, is a deletion. End to end on EWS and on Graph:
the runner, the built-in CRM and ewsim over HTTP, on a real database."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest

from crm.models import Event, Person
from engine.models import FolderState, Link, Run, RunItem
from engine.run.stamps import IdentityStamps
from engine.sync import sync
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from tests.engine.graph_sync_helpers import make_graph_profile
from tests.engine.sync_helpers import add_contact, make_profile
from tests.engine.test_calendar_sync import add_exchange_event, crm_event

pytestmark = pytest.mark.django_db(transaction=True)
PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")
BACKENDS: dict[str, Callable[..., SyncProfile]] = {"ews": make_profile,
                                                   "graph": make_graph_profile}
# Ways an item is deleted in Outlook: to Deleted Items, or for good (Shift+Del, emptied trash).
DELETIONS: dict[str, Callable[[SimHandle, str], Any]] = {
    "to deleted items": lambda sim, item: sim.control.move_item(item, "deleteditems"),
    "for good": lambda sim, item: sim.control.delete_item(item),
}


@pytest.fixture(params=sorted(BACKENDS))
def new_profile(request: pytest.FixtureRequest, ewsim: SimHandle
                ) -> Callable[..., SyncProfile]:
    """A profile on Alice's mailbox through EWS or through Graph (the connection's kind)."""
    return lambda **contact_settings: BACKENDS[request.param](ewsim, **contact_settings)


def run(profile: SyncProfile, agenda: str) -> Run:
    done = sync(SyncProfile.objects.get(pk=profile.pk), agenda)
    assert done.status == Run.Status.SUCCESS, done.message
    return done


def folder(sim: SimHandle, name: str, parent: str = "msgfolderroot",
           folder_class: str = "IPF.Note") -> str:
    return str(sim.control.call("POST", "folders", {"mailbox": sim.user, "parent": parent,
                                                    "name": name,
                                                    "folder_class": folder_class})["id"])


def remote_id(profile: SyncProfile, crm_key: object) -> str:
    """The Exchange item linked to a CRM record (the control plane takes EWS and Graph ids)."""
    return Link.objects.get(profile=profile, crm_key=str(crm_key)).remote_id


def link_states(profile: SyncProfile) -> dict[int, str]:
    return {int(key): state for key, state in
            Link.objects.filter(profile=profile).values_list("crm_key", "state")}


def contacts_in(sim: SimHandle, name: str) -> int:
    folders = sim.control.call("GET", "folders", {"mailbox": sim.user})
    return {f["name"]: f["total"] for f in folders}[name]


def lines(run: Run, action: str) -> dict[str, str]:
    return dict(run.items.filter(action=action).values_list("title", "detail"))


def person(profile: SyncProfile, name: str) -> Person:
    return Person.objects.create(organization_id=profile.organization_id, first_name=name,
                                 last_name="Nová", email1=f"{name.lower()}@acme.cz")


def at(days: int, hour: int) -> dt.datetime:
    today = dt.datetime.now(PRAGUE).date()
    return dt.datetime.combine(today + dt.timedelta(days=days), dt.time(hour), PRAGUE)


# --- contacts ----------------------------------------------------------------------------------
def test_a_contact_moved_to_another_folder_is_unlinked_and_the_crm_person_stays(
        ewsim: SimHandle, new_profile: Callable[..., SyncProfile]) -> None:
    profile = new_profile(deletion_policy="propagate")
    eva, jan = person(profile, "Eva"), person(profile, "Jan")
    run(profile, "contacts")
    archive = folder(ewsim, "Archive")
    ewsim.control.move_item(remote_id(profile, eva.pk), archive)

    moved = run(profile, "contacts")
    assert (moved.crm_deleted, moved.remote_deleted) == (0, 0)
    assert lines(moved, RunItem.Action.UNLINK) == {
        "Eva Nová": "moved to Archive in Exchange; no longer synced, nothing deleted"}
    assert Person.objects.filter(pk=eva.pk).exists()
    assert link_states(profile) == {eva.pk: Link.State.UNLINKED, jan.pk: Link.State.ACTIVE}
    # Out of sync now: an edit of the CRM person is neither carried to the archived copy
    # nor copied into the folder again.
    Person.objects.filter(pk=eva.pk).update(job_title="CEO")
    assert run(profile, "contacts").items.count() == 0
    assert contacts_in(ewsim, "Contacts") == 1


def test_a_contact_made_in_outlook_and_imported_is_found_when_moved(
        ewsim: SimHandle, new_profile: Callable[..., SyncProfile]) -> None:
    # Made in Outlook, so the engine never wrote it: on EWS its ItemId changes when it moves,
    # and only the identity stamp the engine writes on importing it finds it again.
    profile = new_profile(deletion_policy="propagate")
    add_contact(ewsim, "Petr", "Malý", email="petr@acme.cz")
    imported = run(profile, "contacts")
    assert imported.crm_created == 1
    petr = Person.objects.get(first_name="Petr")
    assert run(profile, "contacts").requests == 1   # the stamp's write is not a change
    ewsim.control.move_item(remote_id(profile, petr.pk), folder(ewsim, "Archive"))

    moved = run(profile, "contacts")
    assert (moved.crm_deleted, moved.remote_deleted) == (0, 0)
    assert lines(moved, RunItem.Action.UNLINK) == {
        "Petr Malý": "moved to Archive in Exchange; no longer synced, nothing deleted"}
    assert Person.objects.filter(pk=petr.pk).exists()
    assert link_states(profile) == {petr.pk: Link.State.UNLINKED}


def test_a_contact_matched_to_a_crm_person_is_found_when_moved(
        ewsim: SimHandle, new_profile: Callable[..., SyncProfile]) -> None:
    # The same person on both sides before the first run: linked by matching, nothing
    # written to the Exchange item but, on EWS, its identity stamp.
    profile = new_profile(deletion_policy="propagate")
    eva = person(profile, "Eva")
    add_contact(ewsim, "Eva", "Nová", email="eva@acme.cz")
    first = run(profile, "contacts")
    assert (first.crm_created, first.remote_created, first.linked) == (0, 0, 1)
    assert run(profile, "contacts").requests == 1   # the stamp's write is not a change
    ewsim.control.move_item(remote_id(profile, eva.pk), folder(ewsim, "Archive"))

    moved = run(profile, "contacts")
    assert (moved.crm_deleted, moved.remote_deleted) == (0, 0)
    assert lines(moved, RunItem.Action.UNLINK) == {
        "Eva Nová": "moved to Archive in Exchange; no longer synced, nothing deleted"}
    assert Person.objects.filter(pk=eva.pk).exists()


def linked_by_an_older_version(monkeypatch: pytest.MonkeyPatch, profile: SyncProfile) -> None:
    """Sync as a version that stamped no import or match did, then upgrade: the migration
    leaves the folder's links to be stamped."""
    with monkeypatch.context() as patched:
        patched.setattr(IdentityStamps, "_stamp_due", lambda *args: False)
        run(profile, "contacts")
    FolderState.objects.filter(profile=profile).update(stamps_checked=False)


def test_contacts_linked_before_stamps_were_written_are_stamped_once_and_found_when_moved(
        ewsim: SimHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = make_profile(ewsim, deletion_policy="propagate")
    for i in range(150):
        add_contact(ewsim, f"Petr{i:03d}", "Malý", email=f"p{i}@acme.cz")
    matched = person(profile, "Eva")
    add_contact(ewsim, "Eva", "Nová", email="eva@acme.cz")
    linked_by_an_older_version(monkeypatch, profile)
    assert Link.objects.filter(profile=profile).count() == 151
    ewsim.control.reset_counters()

    upgraded = run(profile, "contacts")
    # Nothing changed: the 151 stamps in two UpdateItems of at most 100, nothing else.
    assert upgraded.items.count() == 0
    assert ewsim.control.counters().get("UpdateItem") == 2, ewsim.control.counters()
    assert FolderState.objects.get(profile=profile).stamps_checked
    assert run(profile, "contacts").requests == 1   # done once: the stamps are not changes

    petr = Person.objects.get(first_name="Petr000")
    archive = folder(ewsim, "Archive")
    ewsim.control.move_item(remote_id(profile, petr.pk), archive)
    ewsim.control.move_item(remote_id(profile, matched.pk), archive)
    moved = run(profile, "contacts")
    assert moved.crm_deleted == 0
    assert set(lines(moved, RunItem.Action.UNLINK)) == {"Petr000 Malý", "Eva Nová"}
    assert Person.objects.count() == 151


def test_a_contact_edited_before_its_stamp_could_be_written_is_stamped_when_read(
        ewsim: SimHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    # The link's version is stale (an edit in Outlook not yet read): Exchange refuses the
    # stamp's write; the edit is read next run and the stamp written with it.
    profile = make_profile(ewsim, deletion_policy="propagate")
    item = add_contact(ewsim, "Petr", "Malý", email="petr@acme.cz")
    linked_by_an_older_version(monkeypatch, profile)
    petr = Person.objects.get()
    Link.objects.filter(profile=profile).update(remote_version="stale")

    refused = run(profile, "contacts")
    assert refused.items.count() == 0
    assert Link.objects.get(profile=profile).remote_version == "stale"
    ewsim.control.update_item(item, JobTitle="Buyer")
    edited = run(profile, "contacts")
    assert Person.objects.get().job_title == "Buyer"
    assert edited.crm_updated == 1
    assert run(profile, "contacts").requests == 1
    ewsim.control.move_item(remote_id(profile, petr.pk), folder(ewsim, "Archive"))
    assert run(profile, "contacts").crm_deleted == 0
    assert Person.objects.filter(pk=petr.pk).exists()


@pytest.mark.parametrize("how", sorted(DELETIONS))
def test_a_deleted_contact_is_deleted_while_an_archived_one_stays(
        ewsim: SimHandle, new_profile: Callable[..., SyncProfile], how: str) -> None:
    profile = new_profile(deletion_policy="propagate")
    eva, jan = person(profile, "Eva"), person(profile, "Jan")
    run(profile, "contacts")
    ewsim.control.move_item(remote_id(profile, eva.pk), folder(ewsim, "Archive"))
    DELETIONS[how](ewsim, remote_id(profile, jan.pk))

    done = run(profile, "contacts")
    assert done.crm_deleted == 1
    assert set(lines(done, RunItem.Action.UNLINK)) == {"Eva Nová"}
    assert list(Person.objects.values_list("first_name", flat=True)) == ["Eva"]
    assert link_states(profile) == {eva.pk: Link.State.UNLINKED}


def test_under_the_default_policy_a_deletion_and_a_move_both_stop_the_sync_each_as_itself(
        ewsim: SimHandle, new_profile: Callable[..., SyncProfile]) -> None:
    profile = new_profile()
    eva, jan = person(profile, "Eva"), person(profile, "Jan")
    run(profile, "contacts")
    ewsim.control.move_item(remote_id(profile, eva.pk), folder(ewsim, "Archive"))
    ewsim.control.move_item(remote_id(profile, jan.pk), "deleteditems")

    done = run(profile, "contacts")
    assert lines(done, RunItem.Action.UNLINK) == {
        "Eva Nová": "moved to Archive in Exchange; no longer synced, nothing deleted",
        "Jan Nová": "deleted in Exchange; kept on the other side"}
    assert Person.objects.count() == 2
    assert link_states(profile) == {eva.pk: Link.State.UNLINKED, jan.pk: Link.State.UNLINKED}


def test_a_contact_moved_back_is_not_copied_again_on_either_side(
        ewsim: SimHandle, new_profile: Callable[..., SyncProfile]) -> None:
    profile = new_profile(deletion_policy="propagate")
    eva = person(profile, "Eva")
    run(profile, "contacts")
    archived = ewsim.control.move_item(remote_id(profile, eva.pk), folder(ewsim, "Archive"))
    run(profile, "contacts")
    ewsim.control.move_item(archived["id"], "contacts")

    back = run(profile, "contacts")
    assert (back.crm_created, back.remote_created, back.crm_deleted) == (0, 0, 0)
    assert Person.objects.get().pk == eva.pk
    assert contacts_in(ewsim, "Contacts") == 1


def test_many_removals_in_one_run_are_looked_up_in_a_bounded_number_of_requests(
        ewsim: SimHandle, new_profile: Callable[..., SyncProfile]) -> None:
    profile = new_profile(deletion_policy="propagate")
    profile.mass_delete_min_items = 1000
    profile.save()
    people = [person(profile, f"P{i:02d}") for i in range(45)]
    run(profile, "contacts")
    archive = folder(ewsim, "Archive")
    ways = [lambda sim, item: sim.control.move_item(item, archive), *DELETIONS.values()]
    for i, someone in enumerate(people):   # a third each: archived, trashed, erased
        ways[i % 3](ewsim, remote_id(profile, someone.pk))
    ewsim.control.reset_counters()

    done = run(profile, "contacts")
    assert done.crm_deleted == 30
    assert len(lines(done, RunItem.Action.UNLINK)) == 15
    assert Person.objects.count() == 15
    # The read of changes and one lookup for the page's 45 removals: EWS the folder tree
    # (GetFolder, FindFolder) and one FindItem; Graph three $batches of 20 and the folders
    # the items are in.
    assert done.requests <= 8, (ewsim.control.counters(), ewsim.control.graph_stats())
    counted = ewsim.control.counters()
    assert counted.get("FindItem", 0) <= 1, counted


def test_when_exchange_will_not_search_a_folder_nothing_is_deleted_until_it_does(
        ewsim: SimHandle) -> None:
    profile = make_profile(ewsim, deletion_policy="propagate")
    eva = person(profile, "Eva")
    run(profile, "contacts")
    ewsim.control.move_item(remote_id(profile, eva.pk), folder(ewsim, "Archive"))
    # Exchange answers for each folder; one gone meanwhile is ErrorItemNotFound. (Most other
    # codes exchangelib raises for the whole request, which fails the run as well.)
    ewsim.control.fault("response_error", operation="FindItem")

    failed = sync(SyncProfile.objects.get(pk=profile.pk), "contacts")
    assert failed.status == Run.Status.FAILED
    assert "would not search every folder" in failed.message
    assert link_states(profile) == {eva.pk: Link.State.ACTIVE}
    again = run(profile, "contacts")
    assert set(lines(again, RunItem.Action.UNLINK)) == {"Eva Nová"}
    assert Person.objects.filter(pk=eva.pk).exists()


# --- calendar ----------------------------------------------------------------------------------
def test_an_event_moved_to_another_calendar_is_unlinked_and_the_crm_event_stays(
        ewsim: SimHandle, new_profile: Callable[..., SyncProfile]) -> None:
    profile = new_profile()
    add_exchange_event(ewsim, "Made in Outlook", at(1, 10))
    from_crm = crm_event(profile, "Made in the CRM", at(2, 10))
    run(profile, "calendar")
    imported = Event.objects.get(subject="Made in Outlook")
    old = folder(ewsim, "Old", parent="calendar", folder_class="IPF.Appointment")
    ewsim.control.move_item(remote_id(profile, imported.pk), old)
    ewsim.control.move_item(remote_id(profile, from_crm.pk), old)

    moved = run(profile, "calendar")
    assert (moved.crm_deleted, moved.remote_deleted) == (0, 0)
    assert lines(moved, RunItem.Action.UNLINK) == {
        subject: "moved to Calendar/Old in Exchange; no longer synced, nothing deleted"
        for subject in ("Made in Outlook", "Made in the CRM")}
    assert Event.objects.count() == 2
    assert set(link_states(profile).values()) == {Link.State.UNLINKED}


@pytest.mark.parametrize("how", sorted(DELETIONS))
def test_a_deleted_event_is_deleted_while_an_archived_one_stays(
        ewsim: SimHandle, new_profile: Callable[..., SyncProfile], how: str) -> None:
    profile = new_profile()
    add_exchange_event(ewsim, "Archived", at(1, 10))
    gone = crm_event(profile, "Gone", at(1, 12))
    run(profile, "calendar")
    archived = Event.objects.get(subject="Archived")
    old = folder(ewsim, "Old", parent="calendar", folder_class="IPF.Appointment")
    ewsim.control.move_item(remote_id(profile, archived.pk), old)
    DELETIONS[how](ewsim, remote_id(profile, gone.pk))

    done = run(profile, "calendar")
    assert done.crm_deleted == 1
    assert set(lines(done, RunItem.Action.UNLINK)) == {"Archived"}
    assert list(Event.objects.values_list("subject", flat=True)) == ["Archived"]
