"""The kinds of CRM this server is configured for, by name, as SYNC_CRM_KINDS lists them.

The configuration side of the CRM registry: a CRM connection names a kind, and validating it
needs only what the kind declares (its label, capabilities and settings fields), loaded by
dotted path the way django.contrib.sessions loads its engine. Building and running a backend
is the engine's side (engine/crmstore/registry.py), which also checks at start that every
path names a CrmBackend.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

DEFAULT_KIND = "builtin"


class SettingDeclaration(Protocol):
    name: str
    label: Any
    secret: bool
    required: bool


class CrmKind(Protocol):
    """What a kind of CRM declares for its connections (engine.crmstore.base.CrmBackend)."""

    label: Any
    capabilities: Iterable[str]
    settings_fields: tuple[SettingDeclaration, ...]


@lru_cache(maxsize=32)
def _load(path: str) -> CrmKind:
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"SYNC_CRM_KINDS names {path!r}, which cannot be imported: {exc}") from exc


def kinds() -> dict[str, str]:
    """Kind name -> dotted path, as configured (read each time: tests override it)."""
    return dict(settings.SYNC_CRM_KINDS)


def is_known(kind: str) -> bool:
    return kind in kinds()


def kind_class(kind: str) -> Any:
    """The class a kind names (a CrmBackend subclass)."""
    try:
        path = kinds()[kind]
    except KeyError:
        raise ImproperlyConfigured(
            f"The CRM kind {kind!r} is not in SYNC_CRM_KINDS "
            f"(known: {', '.join(sorted(kinds())) or 'none'}).") from None
    return _load(path)
