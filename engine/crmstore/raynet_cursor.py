"""Raynet's changes without listing every id each run: the cursor, the journal of known ids
(engine/raynet_models.py) and the periodic full comparison.

The cursor is "r2|<latest rowInfo.lastModifiedAt>|<records seen at that moment>|<journal
mark>". Between two full comparisons a run lists only the records modified at or after the
cursor's time (`rowInfo.lastModifiedAt[GE]`): ⌈changes/1000⌉ requests, not ⌈n/1000⌉.
Deletions come from the journal: every id the sync saw listed or created is in it, and one
found gone (deleted through this backend, or missing from a full listing) gets the time it
was found; a cursor's mark is the latest such time when it was taken, and the deletions
after a cursor are those found after its mark. A record created after a cursor and deleted
before the next read is therefore reported as deleted too.

A full comparison (every id listed, compared with the journal) runs once an hour per
instance and entity (FULL_EVERY), shared by every profile of the instance since the journal
is the instance's, and whenever a cursor cannot be read (a first run, a forced resync, a
cursor of another CRM): that run lists everything anyway.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from engine.crmstore.base import CrmChange
from engine.crmstore.raynet_budget import pages
from engine.crmstore.raynet_mapping import parse
from engine.raynet_models import RaynetInstance, RaynetKnownRecord

FULL_EVERY = dt.timedelta(hours=1)
TAG = "r2"
# Records seen at the cursor's moment that the cursor names (a query of 100 ids); when more
# share it (a bulk import), none are named and they are reported again next time, which
# costs their fetch, never a change missed.
SEEN_MAX = 100
EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)

# The rows of an entity's list with these filters (view=rowInfo), every page.
Rows = Callable[[str, dict[str, Any]], Iterator[dict[str, Any]]]
# One page of an entity's list with these filters.
Page = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Cursor:
    since: dt.datetime | None
    seen: frozenset[str]          # "<entity>:<id>" modified exactly at `since`
    mark: dt.datetime | None      # the journal's latest deletion when it was taken

    def text(self) -> str:
        if self.since is None and self.mark is None:
            return ""
        return "|".join((TAG, self.since.isoformat() if self.since else "",
                         ",".join(sorted(self.seen)),
                         self.mark.isoformat() if self.mark else ""))

    @classmethod
    def read(cls, text: str) -> Cursor | None:
        """None for a cursor of another CRM, an older form, or none: "never read"."""
        parts = text.split("|")
        if len(parts) != 4 or parts[0] != TAG:
            return None
        try:
            since = dt.datetime.fromisoformat(parts[1]) if parts[1] else None
            mark = dt.datetime.fromisoformat(parts[3]) if parts[3] else None
        except ValueError:
            return None
        if any(m is not None and m.tzinfo is None for m in (since, mark)):
            return None
        return cls(since, frozenset(filter(None, parts[2].split(","))), mark)


class KnownIds:
    """The journal of one instance's known ids, in the database (shared by its profiles)."""

    def __init__(self, instance_key: str) -> None:
        self.instance_key = instance_key

    def instance(self) -> RaynetInstance:
        row, _ = RaynetInstance.objects.get_or_create(key=self.instance_key)
        return row

    def _rows(self, entity: str) -> Any:
        return RaynetKnownRecord.objects.filter(instance__key=self.instance_key, entity=entity)

    def saw(self, entity: str, ids: Iterable[int]) -> None:
        """Records that exist: known from now on (again, if one was found gone)."""
        ids = set(ids)
        if not ids:
            return
        instance = self.instance()
        RaynetKnownRecord.objects.bulk_create(
            [RaynetKnownRecord(instance=instance, entity=entity, record_id=i) for i in ids],
            ignore_conflicts=True, batch_size=1000)
        for chunk in _chunks(sorted(ids)):
            self._rows(entity).filter(record_id__in=chunk, gone_at__isnull=False).update(
                gone_at=None)

    def gone(self, entity: str, ids: Iterable[int]) -> None:
        ids = sorted(set(ids))
        instance = self.instance()
        now = timezone.now()
        RaynetKnownRecord.objects.bulk_create(
            [RaynetKnownRecord(instance=instance, entity=entity, record_id=i, gone_at=now)
             for i in ids], ignore_conflicts=True, batch_size=1000)
        for chunk in _chunks(ids):
            self._rows(entity).filter(record_id__in=chunk, gone_at__isnull=True).update(
                gone_at=now)

    def compare(self, entity: str, listed: set[int]) -> None:
        """A full listing: what it holds exists; what the journal knows and it lacks is gone."""
        self.instance()
        with transaction.atomic():
            alive = set(self._rows(entity).filter(gone_at__isnull=True)
                        .values_list("record_id", flat=True))
            self.gone(entity, alive - listed)
            self.saw(entity, listed - alive)
            instance = RaynetInstance.objects.select_for_update().get(key=self.instance_key)
            instance.compared = {**instance.compared, entity: timezone.now().isoformat()}
            instance.save(update_fields=["compared"])

    def alive(self, entity: str) -> int:
        return self._rows(entity).filter(gone_at__isnull=True).count()

    def comparison_due(self, entity: str) -> bool:
        last = self.instance().compared.get(entity)
        if not last:
            return True
        return timezone.now() - dt.datetime.fromisoformat(last) >= FULL_EVERY

    def mark(self) -> dt.datetime | None:
        latest = (RaynetKnownRecord.objects.filter(instance__key=self.instance_key,
                                                   gone_at__isnull=False)
                  .order_by("-gone_at").values_list("gone_at", flat=True).first())
        return latest

    def gone_after(self, entity: str, mark: dt.datetime | None) -> list[str]:
        rows = self._rows(entity).filter(gone_at__isnull=False)
        if mark is not None:
            rows = rows.filter(gone_at__gt=mark)
        return [str(i) for i in rows.order_by("gone_at", "record_id")
                .values_list("record_id", flat=True)]


class RaynetChanges:
    """current_cursor() and changes_since() of RaynetCrm."""

    def __init__(self, journal: KnownIds, rows: Rows, page: Page) -> None:
        self.journal = journal
        self.rows = rows
        self.page = page

    def current_cursor(self, entities: Iterable[str]) -> str:
        """One request per entity (its latest modified rows), plus a full listing of an
        entity whose comparison is due: the journal is brought up to date first, so that
        the mark covers the deletions found."""
        latest: dt.datetime | None = None
        seen: list[str] = []
        for entity in entities:
            if self.journal.comparison_due(entity):
                self.compare(entity)
            rows = self.page(entity, {"sortColumn": "rowInfo.lastModifiedAt",
                                      "sortDirection": "DESC", "limit": SEEN_MAX})
            moments = [(parse(r.get("rowInfo.lastModifiedAt")), str(r["id"])) for r in rows]
            moments = [(m, key) for m, key in moments if m is not None]
            if not moments:
                continue
            top = moments[0][0]
            at_top = [f"{entity}:{key}" for m, key in moments if m == top]
            if latest is None or top > latest:
                latest, seen = top, at_top
            elif top == latest:
                seen += at_top
            if len(at_top) == len(rows) == SEEN_MAX:
                seen = []   # too many at one moment to name: reported again next time
        if len(seen) > SEEN_MAX:
            seen = []
        return Cursor(latest, frozenset(seen), self.journal.mark()).text()

    def reads_needed(self, entities: Iterable[str]) -> int:
        """current_cursor()'s requests: a page per entity, and a full listing where due."""
        return sum(1 + (pages(self.journal.alive(entity)) if self.journal.comparison_due(entity)
                        else 0) for entity in entities)

    def compare(self, entity: str) -> list[dict[str, Any]]:
        rows = list(self.rows(entity, {}))
        self.journal.compare(entity, {int(r["id"]) for r in rows})
        return rows

    def changes_since(self, entity: str, text: str) -> Iterator[CrmChange]:
        cursor = Cursor.read(text)
        if cursor is None:
            rows = self.compare(entity)   # listed in full anyway: compared too
            mark = None
        else:
            filters = ({"rowInfo.lastModifiedAt[GE]": cursor.since.isoformat()}
                       if cursor.since is not None else {})
            rows = list(self.rows(entity, filters))
            self.journal.saw(entity, (int(r["id"]) for r in rows))
            mark = cursor.mark
        changed = []
        for row in rows:
            moment = parse(row.get("rowInfo.lastModifiedAt"))
            key = str(row["id"])
            if cursor is not None and cursor.since is not None and moment is not None and (
                    moment < cursor.since
                    or (moment == cursor.since and f"{entity}:{key}" in cursor.seen)):
                continue
            changed.append((moment or EPOCH, int(key), str(row.get("_version", ""))))
        for _, key_id, version in sorted(changed):
            yield CrmChange(str(key_id), False, version)
        listed = {str(row["id"]) for row in rows}
        for key in self.journal.gone_after(entity, mark):
            if key not in listed:
                yield CrmChange(key, True)


def _chunks(ids: list[int], size: int = 500) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]
