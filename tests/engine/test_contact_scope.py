"""Contacts go only where they belong: a mailbox holds its CRM user's persons by default, the
whole organization or a classification branch only when chosen; and a run other than a
profile's first that would create more than the profile allows waits for approval.

End to end: the product's entry point (`engine.sync.sync`), the built-in CRM and ewsim's two
front doors (EWS and Microsoft Graph) over HTTP, on a real database. Alice and Bob are two
colleagues of one organization, each with a profile on one connection.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crm.models import ClassificationNode, CrmUser, Person
from engine.agendas.contacts import ContactSync
from engine.mailbox import open_mailbox
from engine.models import Lease, Link, PendingItem, Run, RunItem
from engine.run.journal import Killed
from engine.sync import crm_for, sync
from ewsim.testing import SimHandle
from profiles.models import ContactSettings, SyncProfile
from tests.engine.graph_sync_helpers import make_graph_profile
from tests.engine.sync_helpers import make_profile

pytestmark = pytest.mark.django_db(transaction=True)

BOB = "bob@example.com"
PRODUCT_DEFAULT = ContactSettings._meta.get_field("scope").get_default()
CONTACT_XML = (
    "<t:Contact><t:DisplayName>{given} {surname}</t:DisplayName><t:GivenName>{given}"
    "</t:GivenName><t:EmailAddresses><t:Entry Key=\"EmailAddress1\">{email}</t:Entry>"
    "</t:EmailAddresses><t:Surname>{surname}</t:Surname></t:Contact>")


def colleagues(sim: SimHandle, backend: str = "ews",
               **bobs_contacts: Any) -> tuple[SyncProfile, SyncProfile]:
    """Alice's and Bob's profiles on one connection, both with the product's default scope
    unless told otherwise (Bob's contact settings)."""
    make = make_graph_profile if backend == "graph" else make_profile
    alice = make(sim, scope=PRODUCT_DEFAULT)
    sim.control.add_user(BOB, "bob-secret")
    user = User.objects.create_user("bob", BOB, "pw")
    crm_user = CrmUser.objects.create(organization_id=alice.organization_id, name="Bob",
                                      login="bob")
    bob = SyncProfile.objects.create(organization_id=alice.organization_id, user=user,
                                     mailbox=BOB, crm_user=crm_user,
                                     connection=alice.connection)
    settings = bob.contactsettings
    for name, value in bobs_contacts.items():
        setattr(settings, name, value)
    settings.full_clean()
    settings.save()
    return alice, bob


def run(profile: SyncProfile, **options: Any) -> Run:
    """One contacts run through the product's entry point, as a worker starts it."""
    return sync(SyncProfile.objects.get(pk=profile.pk), "contacts", **options)


def imported(owner: CrmUser, count: int, prefix: str = "customer") -> list[Person]:
    """Persons one user imported into the CRM (one bulk insert, as an import does)."""
    return Person.objects.bulk_create([
        Person(organization_id=owner.organization_id, owner=owner, first_name="Zákazník",
               last_name=f"{prefix} {i:03}", email1=f"{prefix}{i}@firma.cz")
        for i in range(count)])


def contacts_in(sim: SimHandle, mailbox: str) -> int:
    folders = sim.control.call("GET", "folders", {"mailbox": mailbox})
    return {f["name"]: f["total"] for f in folders}["Contacts"]


def add_contacts(sim: SimHandle, mailbox: str, count: int) -> None:
    for i in range(count):
        sim.control.create_item(mailbox, folder="contacts", tag="Contact", xml=CONTACT_XML.format(
            given="Kontakt", surname=f"{i:03}", email=f"kontakt{i}@outlook.cz"))


def approve(run: Run) -> None:
    """An administrator approves the run in the admin's list of sync runs."""
    admin, _ = User.objects.get_or_create(username="admin", defaults={
        "is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(admin)
    response = client.post(reverse("admin:engine_run_changelist"), {
        "action": "approve_deletions", ACTION_CHECKBOX_NAME: [run.pk]})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.approved_by == admin


# --- scope ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["ews", "graph"])
def test_a_users_imported_persons_stay_out_of_a_colleagues_mailbox(
        ewsim: SimHandle, backend: str) -> None:
    alice, bob = colleagues(ewsim, backend)
    assert bob.contactsettings.scope == ContactSettings.Scope.OWNED
    imported(alice.crm_user, 300)
    first = run(alice)
    assert first.status == Run.Status.SUCCESS, first.message
    assert first.remote_created == 300 and contacts_in(ewsim, ewsim.user) == 300
    for _ in range(2):   # Bob's first run, and a later one
        bobs = run(bob)
        assert bobs.status == Run.Status.SUCCESS, bobs.message
        assert (bobs.remote_created, bobs.crm_created) == (0, 0)
        assert contacts_in(ewsim, BOB) == 0


def test_the_whole_organization_is_an_explicit_choice(ewsim: SimHandle) -> None:
    alice, bob = colleagues(ewsim, scope=ContactSettings.Scope.ORGANIZATION)
    imported(alice.crm_user, 300)
    bobs = run(bob)
    assert bobs.status == Run.Status.SUCCESS, bobs.message
    assert bobs.remote_created == 300 and contacts_in(ewsim, BOB) == 300


def test_a_classification_branch_limits_them(ewsim: SimHandle) -> None:
    alice, bob = colleagues(ewsim)
    customers = ClassificationNode.objects.create(organization_id=alice.organization_id,
                                                  name="Zákazníci")
    moravia = ClassificationNode.objects.create(organization_id=alice.organization_id,
                                                name="Morava", parent=customers)
    settings = bob.contactsettings
    settings.scope, settings.classification_node = ContactSettings.Scope.BRANCH, customers
    settings.full_clean()
    settings.save()
    persons = imported(alice.crm_user, 300)
    for person in persons[:5]:
        person.classification_nodes.add(moravia)
    add_contacts(ewsim, BOB, 1)
    bobs = run(bob)
    assert bobs.status == Run.Status.SUCCESS, bobs.message
    assert (bobs.remote_created, bobs.crm_created) == (5, 1)
    assert contacts_in(ewsim, BOB) == 6
    # Created from Bob's mailbox: Bob's, and inside the branch so that it stays in scope.
    new = Person.objects.get(email1="kontakt0@outlook.cz")
    assert new.owner == bob.crm_user
    assert list(new.classification_nodes.all()) == [customers]


def test_a_person_created_from_a_mailbox_belongs_to_its_crm_user(ewsim: SimHandle) -> None:
    alice, bob = colleagues(ewsim)
    add_contacts(ewsim, BOB, 2)
    assert run(bob).crm_created == 2
    assert {p.owner for p in Person.objects.all()} == {bob.crm_user}
    # Nothing Bob imported goes to Alice.
    assert run(alice).remote_created == 0 and contacts_in(ewsim, ewsim.user) == 0


@pytest.mark.parametrize("how", ["owner", "assignment"])
def test_a_person_reassigned_away_leaves_the_mailbox_only_as_a_scope_exit(
        ewsim: SimHandle, how: str) -> None:
    alice, bob = colleagues(ewsim, deletion_policy="propagate")
    (eva,) = imported(alice.crm_user if how == "assignment" else bob.crm_user, 1)
    if how == "assignment":
        eva.assigned_users.add(bob.crm_user)
    assert run(bob).remote_created == 1
    assert contacts_in(ewsim, BOB) == 1
    if how == "owner":
        eva.owner = alice.crm_user
        eva.save()
    else:
        eva.assigned_users.remove(bob.crm_user)
    bobs = run(bob)
    assert bobs.status == Run.Status.SUCCESS, bobs.message
    (item,) = bobs.items.all()
    assert item.action == RunItem.Action.UNLINK and "left the synced scope" in item.detail
    assert (bobs.crm_deleted, bobs.remote_deleted) == (0, 0)
    assert Person.objects.filter(pk=eva.pk).exists()      # no CRM deletion
    assert contacts_in(ewsim, BOB) == 1                   # the Exchange contact is left alone
    assert not Link.objects.filter(profile=bob).exists()
    # An edit after it left does not bring it back, nor does it reach Bob's old copy.
    eva.job_title = "Nákup"
    eva.save()
    assert run(bob).items.count() == 0


# --- the mass-creation guard ------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["ews", "graph"])
def test_a_mass_creation_in_exchange_waits_for_approval(ewsim: SimHandle, backend: str) -> None:
    _alice, bob = colleagues(ewsim, backend)
    assert bob.mass_create_min_items == 50
    assert run(bob).status == Run.Status.SUCCESS          # the first run: nothing yet
    imported(bob.crm_user, 60)
    held = run(bob)
    assert held.status == Run.Status.WAITING, held.message
    assert held.remote_created == 0 and contacts_in(ewsim, BOB) == 0
    assert held.items.filter(action=RunItem.Action.PENDING_CREATE).count() == 60
    again = run(bob)
    assert again.status == Run.Status.WAITING and contacts_in(ewsim, BOB) == 0
    approve(again)
    approved = run(bob)
    assert approved.status == Run.Status.SUCCESS, approved.message
    assert approved.remote_created == 60 and contacts_in(ewsim, BOB) == 60
    assert Link.objects.filter(profile=bob).count() == 60
    after = run(bob)
    assert after.status == Run.Status.SUCCESS and after.items.count() == 0


@pytest.mark.parametrize("backend", ["ews", "graph"])
def test_a_mass_creation_in_the_crm_waits_for_approval(ewsim: SimHandle, backend: str) -> None:
    _alice, bob = colleagues(ewsim, backend)
    assert run(bob).status == Run.Status.SUCCESS
    add_contacts(ewsim, BOB, 60)
    held = run(bob)
    assert held.status == Run.Status.WAITING, held.message
    assert held.crm_created == 0 and not Person.objects.exists()
    assert held.items.filter(action=RunItem.Action.PENDING_CREATE).count() == 60
    assert PendingItem.objects.filter(profile=bob).count() == 60   # still waiting to be matched
    assert run(bob).status == Run.Status.WAITING and not Person.objects.exists()
    approve(held)
    approved = run(bob)
    assert approved.status == Run.Status.SUCCESS, approved.message
    assert approved.crm_created == 60 and Person.objects.count() == 60
    assert run(bob).items.count() == 0


def test_an_analysis_shows_the_held_creations_and_changes_nothing(ewsim: SimHandle) -> None:
    _alice, bob = colleagues(ewsim)
    run(bob)
    imported(bob.crm_user, 60)
    analysis = run(bob, dry_run=True)
    assert analysis.status == Run.Status.WAITING
    assert analysis.items.filter(action=RunItem.Action.PENDING_CREATE).count() == 60
    held = run(bob)
    assert held.status == Run.Status.WAITING and contacts_in(ewsim, BOB) == 0


def test_creations_within_the_threshold_are_not_held(ewsim: SimHandle) -> None:
    _alice, bob = colleagues(ewsim)
    run(bob)
    imported(bob.crm_user, 50)
    add_contacts(ewsim, BOB, 50)
    second = run(bob)
    assert second.status == Run.Status.SUCCESS, second.message
    assert (second.remote_created, second.crm_created) == (50, 50)


def test_a_first_run_is_not_held(ewsim: SimHandle) -> None:
    _alice, bob = colleagues(ewsim)
    imported(bob.crm_user, 300)
    add_contacts(ewsim, BOB, 60)
    first = run(bob)
    assert first.status == Run.Status.SUCCESS, first.message
    assert (first.remote_created, first.crm_created) == (300, 60)


def test_a_first_run_that_did_not_finish_leaves_the_next_one_first(ewsim: SimHandle) -> None:
    _alice, bob = colleagues(ewsim)
    imported(bob.crm_user, 300)
    add_contacts(ewsim, BOB, 60)

    def kill(label: str) -> None:
        if label == "remote page checkpointed":   # the Exchange contacts are in, the rest not
            raise Killed(label)

    profile = SyncProfile.objects.get(pk=bob.pk)
    with pytest.raises(Killed), open_mailbox(profile) as mailbox:
        ContactSync(profile, mailbox, crm_for(profile, "contacts"), checkpoint=kill).run()
    Lease.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))   # it died
    again = run(bob)
    assert again.status == Run.Status.SUCCESS, again.message
    assert again.remote_created == 300 and contacts_in(ewsim, BOB) == 360
    assert Person.objects.count() == 360
