"""An agenda's folder changed after its first sync: the synced items move with it, so the
user's mailbox holds each CRM record once (engine/folder_move.py), end to end against ewsim."""

from __future__ import annotations

from collections import Counter

import pytest

from crm.models import Event, Person
from engine.mailbox.ews import EwsMailbox
from engine.models import DuplicateCandidate, FolderState, Link, Run, RunItem
from engine.records import Kind
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from tests.engine.conftest import access_to

from .graph_sync_helpers import make_graph_profile, run_graph
from .sync_helpers import contacts_by_folder, make_profile, run_calendar, run_contacts
from .test_calendar_sync import TODAY, add_exchange_event, assert_no_invitations, at, crm_event
from .test_contacts_sync import add_exchange_contact

pytestmark = pytest.mark.django_db(transaction=True)


def new_contacts_folder(sim: SimHandle, name: str = "CRM") -> dict[str, str]:
    return sim.control.call("POST", "folders", {"mailbox": sim.user, "parent": "contacts",
                                                "name": name, "folder_class": "IPF.Contact"})


def choose_folder(profile: SyncProfile, folder: dict[str, str], path: str) -> None:
    settings = SyncProfile.objects.get(pk=profile.pk).contactsettings
    settings.folder_id, settings.folder_path = folder["id"], path
    settings.save()


def test_after_a_folder_change_the_mailbox_holds_each_crm_person_once(
        ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    for first, email in (("Eva", "eva@acme.cz"), ("Jan", "jan@acme.cz")):
        Person.objects.create(organization_id=profile.organization_id, first_name=first,
                              last_name="Nová", email1=email)
    personal = add_exchange_contact(ewsim, "Máma", "Domů", "mama@example.cz")
    first = run_contacts(ewsim, profile)
    assert (first.status, first.remote_created, first.crm_created) == (
        Run.Status.SUCCESS, 2, 1), first.message

    folder = new_contacts_folder(ewsim)
    choose_folder(profile, folder, "Contacts/CRM")
    run = run_contacts(ewsim, profile)

    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.remote_created, run.crm_created) == (0, 0)
    assert run.items.filter(action=RunItem.Action.UPDATE_REMOTE,
                            detail__contains="moved into “Contacts/CRM”").count() == 3
    everywhere = contacts_by_folder(ewsim)
    assert everywhere == {"Contacts": Counter(),
                          "Contacts/CRM": Counter({"eva@acme.cz": 1, "jan@acme.cz": 1,
                                                   "mama@example.cz": 1})}
    assert Person.objects.filter(organization_id=profile.organization_id).count() == 3
    assert Link.objects.filter(profile=profile, remote_id=personal).count() == 0
    assert list(FolderState.objects.filter(profile=profile).values_list(
        "folder_id", flat=True)) == [folder["id"]]

    # The pairs stay linked: an edit in the CRM reaches the moved item, and a quiet run is
    # quiet.
    eva = Person.objects.get(email1="eva@acme.cz")
    eva.job_title = "Nákup"
    eva.save()
    edited = run_contacts(ewsim, profile)
    assert (edited.remote_updated, edited.remote_created) == (1, 0), edited.message
    assert run_contacts(ewsim, profile).items.count() == 0


def eva_synced(ewsim: SimHandle) -> tuple[SyncProfile, dict[str, str]]:
    """A profile that synced Eva into Contacts, and a new, empty Contacts/CRM folder."""
    profile = make_profile(ewsim)
    Person.objects.create(organization_id=profile.organization_id, first_name="Eva",
                          last_name="Nová", email1="eva@acme.cz")
    run_contacts(ewsim, profile)
    return profile, new_contacts_folder(ewsim)


def test_contacts_already_in_the_new_folder_are_matched_not_doubled(ewsim: SimHandle) -> None:
    profile, folder = eva_synced(ewsim)
    ewsim.control.create_item(ewsim.user, folder=folder["id"], tag="Contact", xml=(
        "<t:Contact><t:DisplayName>Petr Svoboda</t:DisplayName><t:GivenName>Petr</t:GivenName>"
        '<t:EmailAddresses><t:Entry Key="EmailAddress1">petr@stavby.cz</t:Entry>'
        "</t:EmailAddresses><t:Surname>Svoboda</t:Surname></t:Contact>"))
    Person.objects.create(organization_id=profile.organization_id, first_name="Petr",
                          last_name="Svoboda", email1="petr@stavby.cz")
    choose_folder(profile, folder, "Contacts/CRM")

    run = run_contacts(ewsim, profile)

    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.remote_created, run.crm_created, run.linked) == (0, 0, 1)
    assert contacts_by_folder(ewsim)["Contacts/CRM"] == Counter(
        {"eva@acme.cz": 1, "petr@stavby.cz": 1})


def test_an_analysis_moves_nothing_and_the_next_sync_still_does(ewsim: SimHandle) -> None:
    profile, folder = eva_synced(ewsim)
    choose_folder(profile, folder, "Contacts/CRM")

    analysis = run_contacts(ewsim, profile, dry_run=True)

    assert analysis.remote_created == 0, analysis.message
    assert contacts_by_folder(ewsim)["Contacts"] == Counter({"eva@acme.cz": 1})
    run = run_contacts(ewsim, profile)
    assert (run.status, run.remote_created) == (Run.Status.SUCCESS, 0), run.message
    assert contacts_by_folder(ewsim) == {"Contacts": Counter(),
                                         "Contacts/CRM": Counter({"eva@acme.cz": 1})}


def test_without_a_folder_change_nothing_is_moved(ewsim: SimHandle) -> None:
    profile, _ = eva_synced(ewsim)
    ewsim.control.reset_counters()
    run = run_contacts(ewsim, profile)
    assert run.items.count() == 0
    assert "MoveItem" not in ewsim.control.counters()


def test_a_calendars_events_move_with_its_folder_and_are_not_created_again(
        ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    crm_event(profile, "Call Eva", at(2, 14))
    add_exchange_event(ewsim, "Schůzka", at(1, 10))
    first = run_calendar(ewsim, profile, today=TODAY)
    assert (first.status, first.remote_created, first.crm_created) == (
        Run.Status.SUCCESS, 1, 1), first.message
    folder = ewsim.control.call("POST", "folders", {
        "mailbox": ewsim.user, "parent": "calendar", "name": "CRM",
        "folder_class": "IPF.Appointment"})
    settings = SyncProfile.objects.get(pk=profile.pk).calendarsettings
    settings.folder_id, settings.folder_path = folder["id"], "Calendar/CRM"
    settings.save()

    run = run_calendar(ewsim, profile, today=TODAY)

    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.remote_created, run.crm_created, run.remote_updated) == (0, 0, 2)
    with EwsMailbox(access_to(ewsim)) as mailbox:
        subjects = {f.path: sorted(change.record.subject
                                   for page in mailbox.read_changes(f, None)
                                   for change in page.changes if change.record is not None)
                    for f in mailbox.list_folders(Kind.CALENDAR)}
    assert subjects == {"Calendar": [], "Calendar/CRM": ["Call Eva", "Schůzka"]}
    assert Event.objects.count() == 2
    assert run_calendar(ewsim, profile, today=TODAY).items.count() == 0
    assert_no_invitations(ewsim)


def test_on_graph_a_changed_folder_fails_the_run_saying_why_and_leaves_the_links(
        ewsim: SimHandle) -> None:
    profile = make_graph_profile(ewsim)
    Person.objects.create(organization_id=profile.organization_id, first_name="Eva",
                          last_name="Nová", email1="eva@acme.cz")
    assert run_graph(profile, "contacts").status == Run.Status.SUCCESS
    links = list(Link.objects.filter(profile=profile).values_list("remote_id", flat=True))
    choose_folder(profile, new_contacts_folder(ewsim), "Contacts/CRM")

    run = run_graph(profile, "contacts")

    assert run.status == Run.Status.FAILED
    assert "cannot move contacts between folders" in run.message
    assert list(Link.objects.filter(profile=profile).values_list("remote_id", flat=True)) \
        == links
    assert contacts_by_folder(ewsim)["Contacts/CRM"] == Counter()


def test_undecided_duplicates_of_the_old_folder_are_dropped_and_matched_anew(
        ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_exchange_contact(ewsim, "Petr", "Svoboda", "info@stavby.cz")
    for first in ("Petr", "Pavel"):
        Person.objects.create(organization_id=profile.organization_id, first_name=first,
                              last_name="Svoboda", email1="info@stavby.cz")
    run_contacts(ewsim, profile)
    assert DuplicateCandidate.objects.filter(profile=profile).count() == 2
    folder = new_contacts_folder(ewsim)
    choose_folder(profile, folder, "Contacts/CRM")

    run = run_contacts(ewsim, profile)

    assert run.status == Run.Status.SUCCESS, run.message
    assert not DuplicateCandidate.objects.filter(profile=profile).exists()
    assert contacts_by_folder(ewsim) == {"Contacts": Counter({"info@stavby.cz": 1}),
                                         "Contacts/CRM": Counter({"info@stavby.cz": 2})}
    assert Person.objects.filter(organization_id=profile.organization_id).count() == 2
