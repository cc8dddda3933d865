"""The CRM contract run against MemoryCrm: the interface alone is enough to keep it.

The backend itself needs no database; its kind's class methods are handed a sync profile and
a CRM connection, which are, so the test organizations and their CRM users are rows of the
test database as for the built-in store, and each organization's store is named by its id
(as `MemoryCrm.for_profile` names it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.crmstore.base import CrmBackend
from engine.records import Kind
from profiles.models import CrmConnection, Organization, SyncProfile
from tests.engine.crmstore import memory_store
from tests.engine.crmstore.contract import CrmContract, person
from tests.engine.crmstore.harness import crm_users, sync_profile
from tests.engine.crmstore.memory import MemoryCrm
from tests.engine.crmstore.memory_kind import organization_key


class TestMemoryCrm(CrmContract):
    backend_class = MemoryCrm

    @pytest.fixture(autouse=True)
    def _organizations(self, db: None) -> Iterator[None]:
        self.acme_row = Organization.objects.create(name="Acme")
        self.globex_row = Organization.objects.create(name="Globex")
        self.users = crm_users(self.acme_row)
        self.globex_users = crm_users(self.globex_row)
        connection = self.connection()
        connection.kind = "memory"
        connection.save()
        self.acme = organization_key(connection)
        self.globex = organization_key(CrmConnection.objects.get(organization=self.globex_row))
        # Ids come back after the rollback: a store left by another test must not be met.
        for organization in (self.acme, self.globex):
            memory_store.forget(organization)
        yield
        memory_store.forget(self.acme)
        memory_store.forget(self.globex)

    def open_backend(self, user: str = "alice", *, own_only: bool = False,
                     branch: str | None = None) -> CrmBackend:
        return MemoryCrm(self.acme, self.user_key(user), own_only=own_only, branch=branch)

    def open_elsewhere(self) -> CrmBackend:
        return MemoryCrm(self.globex, str(self.globex_users["alice"]))

    def make_branch(self, name: str, parent: str | None = None) -> str:
        return memory_store.add_branch(self.acme, name, parent)

    def user_key(self, user: str) -> str:
        return str(self.users[user])

    def participants(self, key: str) -> set[str]:
        return memory_store.participants(self.acme, key)

    def email_links(self, key: str) -> tuple[set[str], set[str]]:
        return memory_store.email_links(self.acme, key)

    def connection(self) -> CrmConnection:
        return CrmConnection.objects.get(organization=self.acme_row)

    def profile(self, user: str, scope: str, branch: str | None = None) -> SyncProfile:
        return sync_profile(self.acme_row, self.users[user], scope, branch)

    # --- what only this kind does -----------------------------------------------------------
    def test_a_branch_profile_is_refused_rather_than_given_the_whole_organization(
            self) -> None:
        from crm.models import ClassificationNode

        # Chosen while the organization used the built-in store, whose tree it names.
        node = ClassificationNode.objects.create(organization=self.acme_row, name="Zákazníci")
        profile = self.profile("alice", "branch", str(node.pk))
        with pytest.raises(NotImplementedError, match="no classification tree"):
            MemoryCrm.for_profile(profile, self.connection())

    def test_a_built_in_stores_cursor_reads_every_change(self) -> None:
        # An organization switched from the built-in store keeps its folders' cursors, which
        # are revisions of that store: no place in this one.
        backend = self.open_backend()
        written = [self.created(backend, Kind.CONTACTS, person(i)) for i in (1, 2, 3)]
        assert [c.key for c in backend.changes_since(Kind.CONTACTS, "2")] \
            == [w.key for w in written]

    def test_its_data_lives_in_this_process_per_organization(self) -> None:
        written = self.created(self.open_backend(), Kind.CONTACTS, person(1))
        assert "persons: 1," in MemoryCrm.diagnose(self.connection()).message
        memory_store.forget(self.acme)   # what a restart does
        assert self.open_backend().fetch(Kind.CONTACTS, [written.key]) == {}
        assert "persons: 0," in MemoryCrm.diagnose(self.connection()).message
