"""The kinds of CRM this server can reach, named by dotted path in SYNC_CRM_KINDS.

As django.contrib.sessions picks its engine by path, each organization's CRM connection names
a kind, and `crm_for(profile)` builds that kind's backend. An organization without a connection
uses the built-in store (`DEFAULT_KIND`), as every installation did before connections existed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from engine.crmstore.base import Capability, CrmBackend

if TYPE_CHECKING:
    from profiles.models import CrmConnection, SyncProfile

DEFAULT_KIND = "builtin"


@lru_cache(maxsize=32)
def _load(path: str) -> type[CrmBackend]:
    try:
        backend = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"SYNC_CRM_KINDS names {path!r}, which cannot be imported: {exc}") from exc
    if not (isinstance(backend, type) and issubclass(backend, CrmBackend)):
        raise ImproperlyConfigured(
            f"SYNC_CRM_KINDS names {path!r}, which is not a CrmBackend subclass.")
    return backend


def kinds() -> dict[str, str]:
    """Kind name -> dotted path, as configured (read each time: tests override it)."""
    return dict(settings.SYNC_CRM_KINDS)


def is_known(kind: str) -> bool:
    return kind in kinds()


def backend_class(kind: str) -> type[CrmBackend]:
    try:
        path = kinds()[kind]
    except KeyError:
        raise ImproperlyConfigured(
            f"The CRM kind {kind!r} is not in SYNC_CRM_KINDS "
            f"(known: {', '.join(sorted(kinds())) or 'none'}).") from None
    return _load(path)


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
            backend_class(kind)
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="engine.E002"))
    return errors


def connection_of(organization_id: int) -> CrmConnection:
    """The organization's CRM connection; the built-in store's (unsaved) if it has none."""
    from profiles.models import CrmConnection

    connection = CrmConnection.objects.filter(organization_id=organization_id).first()
    return connection or CrmConnection(organization_id=organization_id, kind=DEFAULT_KIND)


def capabilities_of(organization_id: int) -> frozenset[Capability]:
    return backend_class(connection_of(organization_id).kind).capabilities


def crm_for(profile: SyncProfile) -> CrmBackend:
    """The CRM as `profile` sees it, of the kind its organization's connection names."""
    connection = connection_of(profile.organization_id)
    return backend_class(connection.kind).for_profile(profile, connection)
