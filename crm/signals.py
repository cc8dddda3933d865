"""Signal wiring that keeps the change journal complete (see `crm.tracking` for the paths)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from crm.models import Company, Event, Person
from crm.tracking import (
    TrackedModel,
    bump,
    organization_going,
    organization_gone,
    record_deletion,
)


def connect() -> None:
    for tracked in (Person, Company, Event):
        post_delete.connect(record_deletion, sender=tracked, dispatch_uid=f"tombstone-{tracked}")
    pre_delete.connect(organization_going, sender="profiles.Organization",
                       dispatch_uid="organization-going")
    post_delete.connect(organization_gone, sender="profiles.Organization",
                        dispatch_uid="organization-gone")
    # A person's assigned users say whose mailboxes hold it (the profiles' contact scope).
    for owner, field_name in ((Person, "companies"), (Person, "classification_nodes"),
                              (Person, "assigned_users"), (Event, "persons"),
                              (Event, "companies")):
        _track_links(owner, field_name)
    # A series is synced as one record with its exceptions: changing, adding or removing an
    # exception changes the series.
    post_save.connect(_exception_changed, sender=Event, dispatch_uid="exception-saved")
    post_delete.connect(_exception_changed, sender=Event, dispatch_uid="exception-deleted")


def _exception_changed(sender: Any, instance: Event, **kwargs: Any) -> None:
    if instance.recurrence_master_id:
        bump(Event, [instance.recurrence_master_id])   # a master being deleted is skipped


def _track_links(owner: type[TrackedModel], field_name: str) -> None:
    """Bump the tracked owner of a many-to-many link whenever a link comes or goes.

    Django tells of link changes in different ways, depending on the path:
    - `add()`/`set()` insert in bulk and send only m2m_changed (post_add);
    - for an auto-created link table, `remove()`/`clear()` send m2m_changed and nothing
      else, and a cascade (the linked record deleted) sends nothing for the link rows at
      all, so the owners are found in the linked record's pre_delete;
    - a declared link model (PersonCompany) sends post_save/post_delete for every row,
      cascades and admin inlines included.
    """
    through = getattr(owner, field_name).through
    auto_created = bool(through._meta.auto_created)
    owner_column = next(
        f.attname for f in through._meta.fields
        if f.is_relation and f.related_model is owner
    )
    uid = f"links-{owner.__name__}-{field_name}"

    def links_changed(sender: Any, instance: Any, action: str, pk_set: set[int] | None,
                      **kwargs: Any) -> None:
        if action != "post_add" and not auto_created:
            return  # rows of a declared link model report themselves (below)
        if isinstance(instance, owner):
            if action in {"post_add", "post_remove", "post_clear"}:
                bump(owner, [instance.pk])
        elif action in {"post_add", "post_remove"}:
            bump(owner, list(pk_set or ()))
        elif action == "pre_clear":
            # After the clear the links are gone: note whom they joined, beforehand.
            instance._owners_before_clear = _owners_linked_to(owner, field_name, instance)
        elif action == "post_clear":
            bump(owner, getattr(instance, "_owners_before_clear", []))

    m2m_changed.connect(links_changed, sender=through, dispatch_uid=uid, weak=False)

    if auto_created:
        linked_model = owner._meta.get_field(field_name).related_model

        def linked_record_going(sender: Any, instance: Any, **kwargs: Any) -> None:
            bump(owner, _owners_linked_to(owner, field_name, instance))

        pre_delete.connect(linked_record_going, sender=linked_model, dispatch_uid=uid,
                           weak=False)
    else:

        def row_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
            bump(owner, [getattr(instance, owner_column)])

        post_save.connect(row_changed, sender=through, dispatch_uid=uid, weak=False)
        post_delete.connect(row_changed, sender=through, dispatch_uid=uid, weak=False)


def _owners_linked_to(owner: type[TrackedModel], field_name: str, linked: Any) -> list[int]:
    return list(
        owner._base_manager.filter(**{field_name: linked.pk}).values_list("pk", flat=True)
    )
