"""The built-in store's changes as the listener follows them: its change journal, read by
revision (crm.tracking)."""

from __future__ import annotations

from crm.models import Event
from crm.tracking import Change, RevisionCounter
from engine.crmstore.base import ChangeWatch, OrganizationChanges


class BuiltinWatch(ChangeWatch):
    def __init__(self, events_named: int) -> None:
        self.events_named = events_named
        self._seen: dict[int, int] | None = None   # organization -> the last revision looked at

    def changes(self) -> list[OrganizationChanges]:
        """The journal rows newer than the revisions looked at last time.

        Not by row id: the journal keeps one row per object and an edit moves that row to a
        new revision in place, so only a newly created object gets a new row id. A counter
        visible at revision R means every write up to R has committed (allocate_revision
        locks the counter until its write commits), so the rows up to R are all there."""
        current = dict(RevisionCounter.objects.values_list("organization_id", "value"))
        if self._seen is None:
            self._seen = current
            return []
        found = [self._organization(organization_id, self._seen.get(organization_id, 0),
                                    revision)
                 for organization_id, revision in current.items()
                 if revision > self._seen.get(organization_id, 0)]
        # Only once all are read: a failed read is read again whole on the next call.
        self._seen = current
        return found

    def _organization(self, organization_id: int, since: int, until: int
                      ) -> OrganizationChanges:
        rows = Change.objects.filter(organization_id=organization_id, revision__gt=since,
                                     revision__lte=until)
        persons = rows.filter(kind=Change.Kind.PERSON).exists()
        events = list(rows.filter(kind=Change.Kind.EVENT)
                      .values_list("object_id", flat=True)[:self.events_named + 1])
        if len(events) > self.events_named:
            return OrganizationChanges(organization_id, persons, None, frozenset())
        owners = set(Event.objects.filter(pk__in=events).values_list("owner_id", flat=True)) \
            if events else set()
        return OrganizationChanges(organization_id, persons,
                                   frozenset(str(pk) for pk in events),
                                   frozenset(str(pk) for pk in owners if pk is not None))
