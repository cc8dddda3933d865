"""The CRM change cursor: opaque text the built-in store fills with its revision, and the
upgrade that turned the stored numbers into such text."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TestCase, TransactionTestCase

from crm.models import Company, CrmUser, Person
from engine.crmstore.builtin import BuiltinCrm
from engine.models import FolderState
from engine.records import Kind
from profiles.models import MailboxConnection, Organization, SyncProfile

BEFORE = [("engine", "0009_labels_in_czech")]
AFTER = [("engine", "0010_crm_cursor_opaque")]


class BuiltinCursorTestCase(TestCase):
    def setUp(self) -> None:
        self.acme = Organization.objects.create(name="Acme")
        self.crm = BuiltinCrm(self.acme.pk)

    def test_a_crm_never_written_has_the_cursor_of_a_folder_never_read(self) -> None:
        assert self.crm.current_cursor() == ""
        Person.objects.create(organization=self.acme, first_name="Eva")
        assert self.crm.current_cursor().isdigit()

    def test_a_cursor_it_did_not_give_reads_every_change(self) -> None:
        # Such as another CRM's, after the organization changed its CRM: every record is
        # looked at again, and the content hashes make the synced ones no-ops.
        eva = Person.objects.create(organization=self.acme, first_name="Eva")
        cursor = self.crm.current_cursor()
        assert list(self.crm.changes_since(Kind.CONTACTS, cursor)) == []
        for foreign in ("", "2026-12-07T06:00:00Z|17,18"):
            assert [c.key for c in self.crm.changes_since(Kind.CONTACTS, foreign)] == [
                str(eva.pk)]


class CursorUpgradeTestCase(TransactionTestCase):
    def _states(self, executor: MigrationExecutor, targets: list[tuple[str, str]]) -> Any:
        return executor.loader.project_state(targets).apps.get_model("engine", "FolderState")

    def test_stored_revisions_become_text_and_zero_becomes_never_read(self) -> None:
        organization = Organization.objects.create(name="Acme")
        profile = SyncProfile.objects.create(
            organization=organization, user=User.objects.create(username="alice"),
            mailbox="alice@acme.example",
            crm_user=CrmUser.objects.create(organization=organization, name="Alice",
                                            login="alice"),
            connection=MailboxConnection.objects.create(
                organization=organization, name="Exchange",
                ews_url="https://mail.acme.example/EWS"))
        executor = MigrationExecutor(connection)
        executor.migrate(BEFORE)
        old = self._states(executor, BEFORE)
        for folder, cursor in (("never", 0), ("read", 4711)):
            old.objects.create(profile_id=profile.pk, agenda="contacts", folder_id=folder,
                               crm_cursor=cursor)
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())   # back to where the suite was
        assert dict(FolderState.objects.values_list("folder_id", "crm_cursor")) == {
            "never": "", "read": "4711"}


class CursorPastOwnWritesTestCase(TestCase):
    """A run stores a cursor past its own writes, never past anybody else's change."""

    def setUp(self) -> None:
        self.acme = Organization.objects.create(name="Acme")
        self.crm = BuiltinCrm(self.acme.pk)

    def _person(self, name: str) -> Person:
        return Person.objects.create(organization=self.acme, first_name=name)

    def _changes(self, cursor: str) -> list[str]:
        return [c.key for c in self.crm.changes_since(Kind.CONTACTS, cursor)]

    def test_it_moves_past_the_runs_own_writes_to_where_the_crm_stands(self) -> None:
        start = self.crm.current_cursor()
        ours = [self._person("Eva"), self._person("Petr")]
        Company.objects.create(organization=self.acme, name="Stavby")   # another kind
        cursor = self.crm.cursor_past_own_writes(Kind.CONTACTS, start,
                                                 {str(p.revision) for p in ours})
        assert cursor == self.crm.current_cursor()
        assert self._changes(cursor) == []

    def test_it_stops_before_a_change_somebody_else_made_in_between(self) -> None:
        start = self.crm.current_cursor()
        eva = self._person("Eva")
        users = self._person("Jana")
        petr = self._person("Petr")
        cursor = self.crm.cursor_past_own_writes(Kind.CONTACTS, start,
                                                 {str(eva.revision), str(petr.revision)})
        assert cursor == str(users.revision - 1)
        assert self._changes(cursor) == [str(users.pk), str(petr.pk)]

    def test_a_users_edit_of_a_record_the_run_wrote_is_still_read(self) -> None:
        start = self.crm.current_cursor()
        eva = self._person("Eva")
        written = str(eva.revision)
        eva.job_title = "Nákup"     # a user saves the record the run has just written
        eva.save()
        cursor = self.crm.cursor_past_own_writes(Kind.CONTACTS, start, {written})
        assert self._changes(cursor) == [str(eva.pk)]

    def test_without_writes_it_stays_where_the_run_started(self) -> None:
        start = self.crm.current_cursor()
        self._person("Jana")
        assert self.crm.cursor_past_own_writes(Kind.CONTACTS, start, set()) == start
