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
    for owner, field_name in ((Person, "companies"), (Person, "classification_nodes"),
                              (Event, "persons"), (Event, "companies")):
        _track_links(owner, field_name)


def _track_links(owner: type[TrackedModel], field_name: str) -> None:
    """Bump the tracked owner of a many-to-many link whenever a link row comes or goes.

    Rows saved or deleted one by one (admin inlines, `remove()`, `clear()`, cascades) send
    post_save/post_delete; `add()` and `set()` insert in bulk and send only m2m_changed.
    """
    through = getattr(owner, field_name).through
    owner_column = next(
        f.attname for f in through._meta.fields
        if f.is_relation and f.related_model is owner
    )

    def row_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
        bump(owner, [getattr(instance, owner_column)])

    def links_added(sender: Any, instance: Any, action: str, pk_set: set[int] | None,
                    **kwargs: Any) -> None:
        if action != "post_add":
            return
        bump(owner, [instance.pk] if isinstance(instance, owner) else list(pk_set or ()))

    uid = f"links-{owner.__name__}-{field_name}"
    post_save.connect(row_changed, sender=through, dispatch_uid=uid, weak=False)
    post_delete.connect(row_changed, sender=through, dispatch_uid=uid, weak=False)
    m2m_changed.connect(links_added, sender=through, dispatch_uid=uid, weak=False)
