"""Existing installations: the upgrade that gives persons owners and profiles a contact scope.

Before it, a profile without a classification branch synced every person of its
organization. After it, the default is the persons its CRM user owns or is assigned to — and
no contact a mailbox already holds may leave it because of the upgrade.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase

from crm.models import Person
from engine.records import Kind
from engine.sync import crm_for
from profiles.models import ContactSettings, SyncProfile

BEFORE = [("profiles", "0004_organization_attachment_roots"), ("crm", "0002_initial")]


class ContactScopeUpgradeTestCase(TransactionTestCase):
    def _old_installation(self) -> dict[str, Any]:
        executor = MigrationExecutor(connection)
        executor.migrate(BEFORE)
        apps = executor.loader.project_state(BEFORE).apps

        def model(label: str) -> Any:
            return apps.get_model(*label.split("."))

        organization = model("profiles.Organization").objects.create(name="Acme")
        connection_row = model("profiles.MailboxConnection").objects.create(
            organization=organization, name="Exchange", ews_url="https://mail.acme.example/EWS")
        node = model("crm.ClassificationNode").objects.create(organization=organization,
                                                              name="Zákazníci")
        profiles: dict[str, Any] = {}
        for name in ("alice", "bob", "carol"):
            user = model("auth.User").objects.create(username=name)
            crm_user = model("crm.CrmUser").objects.create(organization=organization,
                                                           name=name, login=name)
            profile = model("profiles.SyncProfile").objects.create(
                organization=organization, user=user, mailbox=f"{name}@acme.example",
                crm_user=crm_user, connection=connection_row)
            model("profiles.ContactSettings").objects.create(
                profile=profile, classification_node=node if name == "carol" else None)
            profiles[name] = profile
        person = model("crm.Person")

        def new_person(name: str, origin: str = "") -> Any:
            return person.objects.create(organization=organization, last_name=name,
                                         origin_item_id=origin)

        persons = {
            "from_alices_mailbox": new_person("from_alices_mailbox", origin="AAMk-alice-1"),
            "in_both": new_person("in_both"),
            "unlinked_in_bobs": new_person("unlinked_in_bobs"),
            "pending_deletion_in_bobs": new_person("pending_deletion_in_bobs"),
            "nowhere": new_person("nowhere"),
            "in_carols_branch": new_person("in_carols_branch"),
        }
        links = [("alice", "from_alices_mailbox", "AAMk-alice-1", "active"),
                 ("alice", "in_both", "AAMk-alice-2", "active"),
                 ("bob", "in_both", "AAMk-bob-1", "active"),
                 ("bob", "unlinked_in_bobs", "AAMk-bob-2", "unlinked"),
                 ("bob", "pending_deletion_in_bobs", "AAMk-bob-3", "remote_deleted"),
                 ("carol", "in_carols_branch", "AAMk-carol-1", "active")]
        for profile, name, remote_id, state in links:
            model("engine.Link").objects.create(
                profile=profiles[profile], agenda="contacts", crm_key=str(persons[name].pk),
                remote_id=remote_id, state=state)
        revisions = dict(person.objects.values_list("pk", "revision"))
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())   # back to where the suite was
        return {"persons": {name: p.pk for name, p in persons.items()},
                "profiles": {name: p.pk for name, p in profiles.items()},
                "revisions": revisions}

    def test_every_contact_a_mailbox_holds_stays_in_its_scope(self) -> None:
        old = self._old_installation()
        pk = old["persons"]
        for name, linked in (("alice", {"from_alices_mailbox", "in_both"}),
                             ("bob", {"in_both", "pending_deletion_in_bobs"}),
                             ("carol", {"in_carols_branch"})):
            profile = SyncProfile.objects.get(pk=old["profiles"][name])
            crm = crm_for(profile, "contacts")
            in_scope = crm.in_scope(Kind.CONTACTS, [str(p) for p in pk.values()])
            assert in_scope == {str(pk[p]) for p in linked}, name

    def test_profiles_get_the_owned_scope_or_keep_their_branch(self) -> None:
        old = self._old_installation()
        scopes = {p.profile.mailbox: p.scope for p in ContactSettings.objects.select_related(
            "profile").filter(profile_id__in=old["profiles"].values())}
        assert scopes == {"alice@acme.example": ContactSettings.Scope.OWNED,
                          "bob@acme.example": ContactSettings.Scope.OWNED,
                          "carol@acme.example": ContactSettings.Scope.BRANCH}

    def test_a_person_created_from_a_mailbox_belongs_to_its_crm_user(self) -> None:
        old = self._old_installation()
        persons = {p.last_name: p for p in Person.objects.select_related("owner")}
        assert persons["from_alices_mailbox"].owner.login == "alice"
        assert sorted(u.login for u in persons["in_both"].assigned_users.all()) == [
            "alice", "bob"]
        assert persons["in_both"].owner is None
        assert persons["nowhere"].owner is None
        assert not persons["nowhere"].assigned_users.exists()
        assert not persons["unlinked_in_bobs"].assigned_users.exists()
        # Nothing looks changed to the sync: no person was given a new revision.
        assert dict(Person.objects.values_list("pk", "revision")) == old["revisions"]
