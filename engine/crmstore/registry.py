"""The kinds of CRM this server can reach, named by dotted path in SYNC_CRM_KINDS.

As django.contrib.sessions picks its engine by path, each organization's CRM connection names
a kind, and `crm_for(profile)` builds that kind's backend. An organization without a connection
uses the built-in store (`DEFAULT_KIND`), as every installation did before connections existed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from engine.crmstore.base import Capability, ChangeWatch, CrmBackend
from engine.crmstore.unheld import disagreements
from profiles import crm_kinds
from profiles.crm_kinds import DEFAULT_KIND, is_known, kinds

__all__ = [
    "DEFAULT_KIND",
    "backend_class",
    "capabilities_of",
    "change_watches",
    "connection_of",
    "crm_for",
    "is_known",
    "kind_choices",
    "kinds",
    "organization_crm",
]

if TYPE_CHECKING:
    from profiles.models import CrmConnection, SyncProfile


def backend_class(kind: str) -> type[CrmBackend]:
    backend = crm_kinds.kind_class(kind)
    if not (isinstance(backend, type) and issubclass(backend, CrmBackend)):
        raise ImproperlyConfigured(
            f"SYNC_CRM_KINDS names {crm_kinds.kinds()[kind]!r}, which is not a CrmBackend "
            "subclass.")
    return backend


def kind_choices() -> list[tuple[str, str]]:
    """(kind, label) for a select, in the order the setting lists them."""
    return [(kind, str(backend_class(kind).label or kind)) for kind in kinds()]


@checks.register()
def check_crm_kinds(**kwargs: object) -> list[checks.CheckMessage]:
    """A kind that cannot be loaded is said at start, not when a sync first needs it."""
    errors = []
    if DEFAULT_KIND not in kinds():
        errors.append(checks.Error(
            f"SYNC_CRM_KINDS lacks {DEFAULT_KIND!r}: organizations without a CRM connection "
            "use it.", id="engine.E001"))
    for kind in kinds():
        try:
            backend = backend_class(kind)
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="engine.E002"))
            continue
        # The admin shows the capabilities, the engine leaves out the unheld fields: a kind
        # saying one thing to each is a bug of the kind's declaration.
        errors.extend(checks.Error(f"The CRM kind {kind!r} declares what cannot be: {said}.",
                                   id="engine.E003") for said in disagreements(backend))
    return errors


def connection_of(organization_id: int) -> CrmConnection:
    """The organization's CRM connection; the built-in store's (unsaved) if it has none."""
    from profiles.models import CrmConnection

    connection = CrmConnection.objects.filter(organization_id=organization_id).first()
    return connection or CrmConnection(organization_id=organization_id, kind=DEFAULT_KIND)


def capabilities_of(organization_id: int) -> frozenset[Capability]:
    return backend_class(connection_of(organization_id).kind).capabilities


def crm_for(profile: SyncProfile, connection: CrmConnection | None = None) -> CrmBackend:
    """The CRM as `profile` sees it, of the kind its organization's connection names (read
    here unless the caller has read it already)."""
    connection = connection or connection_of(profile.organization_id)
    return backend_class(connection.kind).for_profile(profile, connection)


def organization_crm(organization_id: int) -> CrmBackend:
    """An organization's CRM as a report reads it: every record, no profile's scope."""
    connection = connection_of(organization_id)
    return backend_class(connection.kind).for_organization(connection)


def change_watches(events_named: int) -> list[ChangeWatch]:
    """One watch per kind of CRM that can be watched (each covers every organization of its
    kind); a kind without one leaves its changes to the scheduled syncs."""
    watches = []
    # Kinds built on another (a subclass) share its watch: one look, not one per kind.
    watchers = {backend.change_watch.__func__: backend  # type: ignore[attr-defined]
                for backend in (backend_class(kind) for kind in kinds())}
    for backend in watchers.values():
        watch = backend.change_watch(events_named)
        if watch is not None:
            watches.append(watch)
    return watches


def reached_by(organization_id: int, connection: CrmConnection | None = None) -> str:
    """Which CRM the organization's connection reaches now (CrmBackend.reached_by)."""
    connection = connection or connection_of(organization_id)
    return backend_class(connection.kind).reached_by(connection)
