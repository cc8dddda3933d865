"""Writes the audit log (profiles.models.AuditEntry) from model signals.

Signals catch every change, whether made in the admin, by a command or in a shell. The
actor is the signed-in user of the request under way (AuditActorMiddleware); outside a
request it is the server itself.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from profiles.models import (
    AuditEntry,
    CalendarSettings,
    CategoryPairing,
    ContactSettings,
    MailboxConnection,
    MailFolder,
    MailSettings,
    SyncProfile,
)

# Encrypted secrets: their changes are logged, their values (even encrypted) never.
SECRET_FIELDS = {"secret_token": "secret", "mailbox_secret_token": "mailbox secret"}
# Kept up to date by Django itself; a change of them says nothing.
UNLOGGED_FIELDS = {"created", "updated"}
# One agenda's settings exist exactly as long as their profile: created and deleted with it.
PROFILE_PARTS = (CalendarSettings, ContactSettings, MailSettings)
AUDITED: tuple[type[models.Model], ...] = (
    MailboxConnection, SyncProfile, *PROFILE_PARTS, CategoryPairing, MailFolder)

_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "audit_request", default=None)


class AuditActorMiddleware:
    """Makes the request's user the actor of what is changed while it is handled."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def _actor() -> Any:
    request = _request.get()
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def _logged_fields(model: type[models.Model]) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields
            if not f.primary_key and f.name not in UNLOGGED_FIELDS]


def _snapshot(instance: models.Model) -> dict[str, Any]:
    return {f.attname: getattr(instance, f.attname) for f in _logged_fields(type(instance))}


def _label(field_name: str) -> str:
    return SECRET_FIELDS.get(field_name, field_name)


def _created(values: dict[str, Any]) -> dict[str, Any]:
    return {_label(name): ("set" if value else "not set") if name in SECRET_FIELDS else value
            for name, value in values.items()}


def _differences(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, value in after.items():
        old = before.get(name)
        if old == value:
            continue
        if name in SECRET_FIELDS:
            changes[_label(name)] = "removed" if not value else ("set" if not old else "changed")
        else:
            changes[name] = {"from": old, "to": value}
    return changes


def _organization_id(instance: models.Model) -> int | None:
    if isinstance(instance, MailboxConnection | SyncProfile):
        return instance.organization_id
    return (SyncProfile.objects.filter(pk=instance.profile_id)
            .values_list("organization_id", flat=True).first())


def _describe(instance: models.Model) -> str:
    if isinstance(instance, MailboxConnection | SyncProfile):
        return str(instance)
    mailbox = (SyncProfile.objects.filter(pk=instance.profile_id)
               .values_list("mailbox", flat=True).first())
    return f"{mailbox or instance.profile_id}: {instance}"[:300]


def _english(text: Any) -> str:
    with translation.override(None):
        return str(text)


def _write(instance: models.Model, action: str, changes: dict[str, Any]) -> None:
    actor = _actor()
    organization_id = _organization_id(instance)
    AuditEntry.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else "",
        organization_id=organization_id,
        action=action,
        # In English whoever is signed in, like the other stored texts; the admin shows it
        # in its reader's language.
        object_type=_english(instance._meta.verbose_name),
        object_id=str(instance.pk),
        object_repr=_describe(instance),
        changes=changes,
    )


def _before_save(sender: type[models.Model], instance: models.Model, raw: bool = False,
                 **kwargs: Any) -> None:
    if raw or instance.pk is None:
        return
    fields = [f.attname for f in _logged_fields(sender)]
    instance._audit_before = sender._default_manager.filter(pk=instance.pk).values(*fields).first()


def _after_save(sender: type[models.Model], instance: models.Model, created: bool,
                raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return
    before = instance.__dict__.pop("_audit_before", None)
    if created or before is None:
        if not isinstance(instance, PROFILE_PARTS):
            _write(instance, AuditEntry.Action.CREATE, _created(_snapshot(instance)))
        return
    changes = _differences(before, _snapshot(instance))
    if changes:
        _write(instance, AuditEntry.Action.CHANGE, changes)


def _after_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    if not isinstance(instance, PROFILE_PARTS):
        _write(instance, AuditEntry.Action.DELETE, {})


def connect() -> None:
    for model in AUDITED:
        uid = f"audit-{model._meta.label_lower}"
        pre_save.connect(_before_save, sender=model, dispatch_uid=uid)
        post_save.connect(_after_save, sender=model, dispatch_uid=uid)
        post_delete.connect(_after_delete, sender=model, dispatch_uid=uid)
