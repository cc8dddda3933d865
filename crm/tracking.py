"""Change tracking for the sync engine: "everything changed since revision R" in one query.

Persons, companies and events carry a `revision`. Every write takes the next revision of its
organization and upserts the object's row in the `Change` journal; a deletion turns that row
into a tombstone. The engine then asks `changes_since(organization, kind, R)`: one indexed
query over the journal, deletions included, in revision order.

Write paths covered (each in one transaction with the write it records):
- `Model.save()` (create and update), including `create()`, `get_or_create()`,
  `update_or_create()`;
- deletion of any kind — `instance.delete()`, `QuerySet.delete()`, and cascades from other
  models — through the `post_delete` signal, which Django sends inside the deletion's
  transaction;
- many-to-many changes (`add`, `remove`, `set`, `clear`, from either side) through
  `m2m_changed`, which bump the owning records;
- `QuerySet.update()`, `bulk_create()` and `bulk_update()`, overridden on `TrackedQuerySet`
  to take one revision for the whole batch.

Not covered, and therefore not to be used on tracked models: raw SQL, and
`QuerySet._raw_delete()` / `_update()` (private Django APIs).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm import bulk_insert

# Organizations being deleted in this thread: their records need no tombstones, since the
# journal goes with them (and a new journal row would point at a vanishing organization).
_organizations_going: ContextVar[frozenset[int]] = ContextVar("organizations_going",
                                                              default=frozenset())


class RevisionCounter(models.Model):
    """One counter per organization: the last revision handed out."""

    organization = models.OneToOneField(
        "profiles.Organization", on_delete=models.CASCADE, related_name="+"
    )
    value = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("revision counter")

    def __str__(self) -> str:
        return f"revision {self.value}"


def allocate_revision(organization_id: int) -> int:
    """The next revision of an organization; call inside the transaction of the write.

    The UPDATE locks the counter row until the transaction commits, so writers of one
    organization take revisions in commit order. A plain auto-increment would not: a
    writer could take 7, commit after another writer's 8, and a reader who had already
    seen 8 would never look at 7 again.
    """
    assert transaction.get_connection().in_atomic_block, "allocate inside the write's transaction"
    counters = RevisionCounter.objects.filter(organization_id=organization_id)
    if not counters.update(value=F("value") + 1):
        try:
            with transaction.atomic():
                RevisionCounter.objects.create(organization_id=organization_id, value=1)
                return 1
        except IntegrityError:
            # Another writer created it first; its row now exists and can be locked.
            counters.update(value=F("value") + 1)
    return counters.values_list("value", flat=True).get()


class Change(models.Model):
    """The journal: one row per tracked object, its last revision, and whether it is gone."""

    class Kind(models.TextChoices):
        PERSON = "person", _("person")
        COMPANY = "company", _("company")
        EVENT = "event", _("event")

    organization = models.ForeignKey(
        "profiles.Organization", on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    object_id = models.BigIntegerField()
    revision = models.BigIntegerField()
    deleted = models.BooleanField(default=False)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("change")
        verbose_name_plural = _("change journal")
        constraints = [
            models.UniqueConstraint(fields=["kind", "object_id"], name="one_change_per_object")
        ]
        indexes = [
            models.Index(fields=["organization", "kind", "revision"], name="change_since_idx")
        ]

    def __str__(self) -> str:
        state = "deleted" if self.deleted else "changed"
        return f"{self.kind} {self.object_id} {state} at revision {self.revision}"


def changes_since(organization_id: int, kind: str, revision: int) -> models.QuerySet[Change]:
    """Every object of `kind` created, changed or deleted after `revision`, oldest first."""
    return Change.objects.filter(
        organization_id=organization_id, kind=kind, revision__gt=revision
    ).order_by("revision", "object_id")


# Journal rows per statement: six parameters a row, within SQLite's oldest limit of 999.
_JOURNAL_ROWS = 150


def record_changes(
    organization_id: int, kind: str, object_ids: Iterable[int], revision: int, deleted: bool
) -> None:
    """Upsert the objects' journal rows: one INSERT … ON CONFLICT a batch (PostgreSQL and
    SQLite say it alike), built here rather than by bulk_create(update_conflicts=True), whose
    compiling of every row cost a first import a twentieth of its time (bench/)."""
    ids = list(object_ids)
    if not ids:
        return
    meta = Change._meta
    quote = connection.ops.quote_name
    changed_at = meta.get_field("changed_at").get_db_prep_save(timezone.now(), connection)
    columns = ", ".join(quote(meta.get_field(name).column) for name in (
        "organization", "kind", "object_id", "revision", "deleted", "changed_at"))
    updates = ", ".join(f"{quote(name)} = excluded.{quote(name)}"
                        for name in ("revision", "deleted", "changed_at"))
    with connection.cursor() as cursor:
        for start in range(0, len(ids), _JOURNAL_ROWS):
            chunk = ids[start:start + _JOURNAL_ROWS]
            cursor.execute(
                f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES "
                + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
                + f" ON CONFLICT ({quote('kind')}, {quote('object_id')}) DO UPDATE SET {updates}",
                [value for object_id in chunk
                 for value in (organization_id, kind, object_id, revision, bool(deleted),
                               changed_at)])


def bump(model: type[TrackedModel], object_ids: Iterable[int]) -> None:
    """Give existing objects a new revision (their linked records changed)."""
    by_organization: dict[int, list[int]] = {}
    for pk, organization_id in model._base_manager.filter(pk__in=list(object_ids)).values_list(
        "pk", "organization_id"
    ):
        by_organization.setdefault(organization_id, []).append(pk)
    for organization_id, ids in by_organization.items():
        if organization_id in _organizations_going.get():
            continue
        # A link row saved on its own (PersonCompany's post_save) runs with no transaction
        # open; the revision must still be taken inside one.
        with transaction.atomic():
            revision = allocate_revision(organization_id)
            # _base_manager's plain update: this *is* the tracking, recorded on the next line.
            models.QuerySet(model).filter(pk__in=ids).update(revision=revision)
            record_changes(organization_id, model.change_kind, ids, revision, deleted=False)


_bulk_update_running: ContextVar[bool] = ContextVar("bulk_update_running", default=False)


class TrackedQuerySet(models.QuerySet):
    """Bulk writes that record what they change, one revision per batch."""

    def update(self, **kwargs: Any) -> int:
        if _bulk_update_running.get():
            # bulk_update() writes through update(); it records the batch itself.
            return super().update(**kwargs)
        with transaction.atomic():
            rows = list(self.values_list("pk", "organization_id"))
            by_organization: dict[int, list[int]] = {}
            for pk, organization_id in rows:
                by_organization.setdefault(organization_id, []).append(pk)
            changed = 0
            for organization_id, ids in by_organization.items():
                revision = allocate_revision(organization_id)
                changed += models.QuerySet(self.model).filter(pk__in=ids).update(
                    revision=revision, **kwargs
                )
                record_changes(organization_id, self.model.change_kind, ids, revision, False)
            return changed

    update.alters_data = True  # type: ignore[attr-defined]

    def bulk_create(self, objs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        if kwargs.get("ignore_conflicts") or kwargs.get("update_conflicts"):
            raise NotImplementedError(
                "bulk_create with ignore_conflicts/update_conflicts cannot tell which rows it "
                "wrote, so it would bypass change tracking; save the objects instead."
            )
        objs = list(objs)
        with transaction.atomic():
            revisions = {oid: allocate_revision(oid) for oid in {o.organization_id for o in objs}}
            for obj in objs:
                obj.revision = revisions[obj.organization_id]
            if not args and not kwargs and bulk_insert.insertable(self.model, objs, self.db):
                bulk_insert.insert(self.model, objs, self.db)
                created = objs
            else:
                created = super().bulk_create(objs, *args, **kwargs)
            for organization_id, revision in revisions.items():
                ids = [o.pk for o in created if o.organization_id == organization_id]
                record_changes(organization_id, self.model.change_kind, ids, revision, False)
        return created

    def bulk_update(self, objs: Iterable[Any], fields: Iterable[str], *args: Any,
                    **kwargs: Any) -> int:
        objs = list(objs)
        with transaction.atomic():
            revisions = {oid: allocate_revision(oid) for oid in {o.organization_id for o in objs}}
            for obj in objs:
                obj.revision = revisions[obj.organization_id]
            token = _bulk_update_running.set(True)
            try:
                changed = super().bulk_update(objs, [*fields, "revision"], *args, **kwargs)
            finally:
                _bulk_update_running.reset(token)
            for organization_id, revision in revisions.items():
                ids = [o.pk for o in objs if o.organization_id == organization_id]
                record_changes(organization_id, self.model.change_kind, ids, revision, False)
        return changed


class TrackedModel(models.Model):
    """A CRM record whose every change the sync engine can find."""

    change_kind: str = ""

    revision = models.BigIntegerField(default=0, editable=False)

    objects = TrackedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        with transaction.atomic():
            self.revision = allocate_revision(self.organization_id)
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "revision"}
            super().save(*args, **kwargs)
            record_changes(self.organization_id, self.change_kind, [self.pk], self.revision,
                           deleted=False)




def organization_going(sender: Any, instance: Any, **kwargs: Any) -> None:
    """pre_delete of an Organization: Django sends every pre_delete before deleting rows."""
    _organizations_going.set(_organizations_going.get() | {instance.pk})


def organization_gone(sender: Any, instance: Any, **kwargs: Any) -> None:
    _organizations_going.set(_organizations_going.get() - {instance.pk})


def record_deletion(sender: type[TrackedModel], instance: TrackedModel, **kwargs: Any) -> None:
    """post_delete: runs inside the deletion's transaction, so the tombstone commits with it."""
    if instance.organization_id in _organizations_going.get():
        return
    revision = allocate_revision(instance.organization_id)
    record_changes(instance.organization_id, sender.change_kind, [instance.pk], revision,
                   deleted=True)
