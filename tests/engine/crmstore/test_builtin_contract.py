"""The CRM contract run against the built-in store (the `crm` app) on the test database.

Backends are built as `engine.sync.crm_for` builds them from a profile's settings: the
profile's CRM user owns what it creates, its contact scope is the organization, the user's
own persons or a classification branch, and attendees are linked to the persons they are.
"""

from __future__ import annotations

import pytest

from crm.models import ClassificationNode, CrmUser, Event
from engine.crmstore.base import CrmBackend
from engine.crmstore.builtin import BuiltinCrm, PersonOptions
from engine.crmstore.builtin_events import EventOptions
from profiles.models import Organization
from tests.engine.crmstore.contract import USERS, CrmContract


def crm_users(organization: Organization) -> dict[str, int]:
    return {name: CrmUser.objects.create(organization=organization, name=name.title(),
                                         login=name).pk
            for name in USERS}


def builtin_crm(organization: Organization, owner_id: int, *, own_only: bool = False,
                branch: str | None = None) -> BuiltinCrm:
    return BuiltinCrm(organization.pk,
                      classification_node_id=int(branch) if branch is not None else None,
                      person_options=PersonOptions(owner_id=owner_id, own_only=own_only),
                      event_options=EventOptions(owner_id=owner_id, link_attendees=True))


# Contract tests the built-in store does not pass yet, and why. Strict: should one pass, the
# suite says so.
KNOWN_LIMITS = {
    "test_a_series_changes_as_one_record":
        "A series' exceptions are Event rows of their own, tracked like any event: the change "
        "journal hands out their keys too (created and deleted), which fetch() never returns. "
        "The engine skips them (no link names them), so nothing is synced wrongly.",
}


class TestBuiltinCrm(CrmContract):
    @pytest.fixture(autouse=True)
    def _organizations(self, db: None, request: pytest.FixtureRequest) -> None:
        reason = KNOWN_LIMITS.get(request.node.name)
        if reason:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
        # `db` rolls the database back after every test: each starts with empty organizations.
        self.acme = Organization.objects.create(name="Acme")
        self.globex = Organization.objects.create(name="Globex")
        self.users = crm_users(self.acme)
        self.globex_users = crm_users(self.globex)

    def open_backend(self, user: str = "alice", *, own_only: bool = False,
                     branch: str | None = None) -> CrmBackend:
        return builtin_crm(self.acme, self.users[user], own_only=own_only, branch=branch)

    def open_elsewhere(self) -> CrmBackend:
        return builtin_crm(self.globex, self.globex_users["alice"])

    def make_branch(self, name: str, parent: str | None = None) -> str:
        node = ClassificationNode.objects.create(
            organization=self.acme, name=name,
            parent_id=int(parent) if parent is not None else None)
        return str(node.pk)

    def user_key(self, user: str) -> str:
        return str(self.users[user])

    def participants(self, key: str) -> set[str]:
        event = Event.objects.get(organization=self.acme, pk=int(key))
        return {str(pk) for pk in event.persons.values_list("pk", flat=True)}
