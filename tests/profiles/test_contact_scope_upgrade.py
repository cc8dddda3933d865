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

BEFORE = [("profiles", "0004_organization_attachment_roots"), ("crm", "0002_initial"),
          ("engine", "0003_run_progress")]


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
            model("profiles.CalendarSettings").objects.create(profile=profile)
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
        persons["in_carols_branch"].classification_nodes.add(node)
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

    def test_no_contact_leaves_a_mailbox_and_persons_from_a_mailbox_get_its_crm_user(
            self) -> None:
        old = self._old_installation()   # one upgrade for all checks: migrating is slow
        pk = old["persons"]
        # The scope: the owned persons by default, or the branch a profile had.
        scopes = {p.profile.mailbox: p.scope for p in ContactSettings.objects.select_related(
            "profile").filter(profile_id__in=old["profiles"].values())}
        assert scopes == {"alice@acme.example": ContactSettings.Scope.OWNED,
                          "bob@acme.example": ContactSettings.Scope.OWNED,
                          "carol@acme.example": ContactSettings.Scope.BRANCH}
        # Every person a mailbox holds is still in its scope, and no other one came in.
        for name, linked in (("alice", {"from_alices_mailbox", "in_both"}),
                             ("bob", {"in_both", "pending_deletion_in_bobs"}),
                             ("carol", {"in_carols_branch"})):
            profile = SyncProfile.objects.get(pk=old["profiles"][name])
            in_scope = crm_for(profile, "contacts").in_scope(
                Kind.CONTACTS, [str(p) for p in pk.values()])
            assert in_scope == {str(pk[p]) for p in linked}, name
        # Who the persons belong to.
        persons = {p.last_name: p for p in Person.objects.select_related("owner")}
        assert persons["from_alices_mailbox"].owner.login == "alice"
        assert not persons["from_alices_mailbox"].assigned_users.exists()
        assert persons["in_both"].owner is None
        assert sorted(u.login for u in persons["in_both"].assigned_users.all()) == [
            "alice", "bob"]
        for nobodys in ("nowhere", "unlinked_in_bobs", "in_carols_branch"):
            assert persons[nobodys].owner is None, nobodys
            assert not persons[nobodys].assigned_users.exists(), nobodys
        # Nothing looks changed to the sync: no person was given a new revision.
        assert dict(Person.objects.values_list("pk", "revision")) == old["revisions"]
