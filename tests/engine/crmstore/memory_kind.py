"""The in-memory CRM as a kind of CRM (SYNC_CRM_KINDS "memory" in the test settings): its
label, what it can do, how a profile's view of it is built, and what "Test connection" says.

Its CRM users are named as the profile names them (the profile's CRM user's id, as text), and
an organization's store is named by the organization's id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.crmstore.base import Capability, ChangeWatch, CrmDiagnosis
from engine.records import Kind
from tests.engine.crmstore.memory_store import store_of

if TYPE_CHECKING:
    from profiles.models import CrmConnection, SyncProfile
    from tests.engine.crmstore.memory import MemoryCrm


def organization_key(connection: CrmConnection) -> str:
    """The store of the connection's organization."""
    return str(connection.organization_id)


class MemoryKind:
    """Mixed into MemoryCrm, before CrmBackend, whose declarations it fills in.

    Nothing to sign in to: its connection has no settings. It keeps three addresses and a
    photo per person. Its classification tree is the tests' own (`add_branch`): a profile's
    branch names a node of the built-in store, which this CRM does not have, so it declares
    no classification. It has no event statuses."""

    label = "In-memory CRM (tests)"
    capabilities = frozenset({Capability.PHOTOS, Capability.THREE_ADDRESSES})

    @classmethod
    def change_watch(cls, events_named: int) -> ChangeWatch | None:
        # The listener runs in a process of its own, which never sees the stores that the
        # web server's or a worker's process keeps: there is nothing it could watch. Its
        # changes wait for the scheduled syncs.
        return None

    @classmethod
    def for_profile(cls, profile: SyncProfile, connection: CrmConnection) -> MemoryCrm:
        contacts = profile.contactsettings
        if contacts.branch_id is not None:
            # Refused, not widened to the whole organization: a scope exit is no deletion,
            # but syncing persons the profile never chose would be.
            raise NotImplementedError(
                "The in-memory CRM has no classification tree: choose which persons the "
                "profile syncs by owner or the whole organization.")
        return cls(organization_key(connection), str(profile.crm_user_id),
                   own_only=contacts.scope == contacts.Scope.OWNED)

    @classmethod
    def for_organization(cls, connection: CrmConnection) -> MemoryCrm:
        # No CRM user: a report reads, and creates nothing that would need an owner.
        return cls(organization_key(connection), "")

    @classmethod
    def diagnose(cls, connection: CrmConnection) -> CrmDiagnosis:
        store = store_of(organization_key(connection))
        return CrmDiagnosis(True, (
            f"The in-memory test CRM answers. It holds persons: "
            f"{len(store.rows[Kind.CONTACTS])}, events: {len(store.rows[Kind.CALENDAR])}, "
            f"e-mails: {len(store.emails)}, in this process only (lost when it ends)."))
