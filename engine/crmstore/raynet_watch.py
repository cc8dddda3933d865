"""Raynet's changes as the listener follows them: the webhook journal, read every second.

Raynet posts each record change to this server (engine/raynet_hooks.py), which journals it
for the organization whose hook took it. The listener asks this watch what is new since its
last look and queues the syncs concerned, debounced (engine/listen.py): a burst of edits in
Raynet makes one sync per profile and agenda, not one per edit.

Which profiles: a person or a company changed → every profile of the organization syncing
contacts (a company's name is its persons' company). A meeting changed → the profiles that
have it linked, when every changed meeting is linked; a meeting no profile knows (created in
Raynet) → every calendar of the organization, since the delivery does not say whose it is
and asking Raynet would cost a request per meeting (a calendar with nothing new costs one).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict

from django.utils import timezone

from engine.crmstore import raynet_webhooks
from engine.crmstore.base import ChangeWatch, OrganizationChanges
from engine.models import Agenda, Link
from profiles.models import RaynetWebhookEvent

CONTACT_ENTITIES = frozenset({"person", "company"})
CALENDAR_ENTITIES = frozenset({"meeting", "event"})   # the calendar activity either
# How long after its id a journal row may still commit (another web process's delivery).
LAG = dt.timedelta(seconds=10)
PRUNE_EVERY = 3600.0   # seconds


class RaynetWatch(ChangeWatch):
    def __init__(self, events_named: int) -> None:
        self.events_named = events_named
        self._since: dt.datetime | None = None   # rows received from then on are read
        self._seen: dict[int, dt.datetime] = {}   # the rows read already, while in LAG
        self._next_prune = 0.0

    def changes(self) -> list[OrganizationChanges]:
        now = timezone.now()
        if time.monotonic() >= self._next_prune:
            # The journal's old rows go (kept for the backend's deletions meanwhile).
            self._next_prune = time.monotonic() + PRUNE_EVERY
            raynet_webhooks.prune(now)
        if self._since is None:
            self._since = now
            return []
        # Not by row id alone: deliveries are taken by several web processes at once, and a
        # row given its id before another may commit after it. Rows received within LAG of
        # the last look are read again, and those read already left out.
        fresh = [row for row in RaynetWebhookEvent.objects.filter(
            received__gte=self._since - LAG).order_by("pk").values_list(
            "pk", "received", "organization_id", "entity", "entity_id")
            if row[0] not in self._seen]
        persons: set[int] = set()
        meetings: dict[int, set[str]] = defaultdict(set)
        for _pk, _received, organization_id, entity, entity_id in fresh:
            if entity in CONTACT_ENTITIES:
                persons.add(organization_id)
            elif entity in CALENDAR_ENTITIES:
                meetings[organization_id].add(str(entity_id))
        found = [self._organization(organization_id, organization_id in persons,
                                    meetings.get(organization_id))
                 for organization_id in sorted(persons | set(meetings))]
        # Only once all is read: a failed read is read again whole on the next call.
        self._since = now
        self._seen = {pk: received for pk, received in self._seen.items()
                      if received >= now - 2 * LAG}
        self._seen.update((row[0], row[1]) for row in fresh)
        return found

    def _organization(self, organization_id: int, persons: bool,
                      meetings: set[str] | None) -> OrganizationChanges:
        if not meetings:
            return OrganizationChanges(organization_id, persons, frozenset(), frozenset())
        if len(meetings) > self.events_named:
            return OrganizationChanges(organization_id, persons, None, frozenset())
        linked = set(Link.objects.filter(
            agenda=Agenda.CALENDAR, crm_key__in=list(meetings),
            profile__organization_id=organization_id).values_list("crm_key", flat=True))
        # One unknown meeting: whose it is, only Raynet knows; every calendar looks.
        named: frozenset[str] | None = frozenset(meetings) if linked >= meetings else None
        return OrganizationChanges(organization_id, persons, named, frozenset())
