"""Near-real-time syncs: watch mailboxes and the CRM, and queue a sync when something changed.

`manage.py listen` runs a `Listener`:
- for every active profile, a thread holds a streaming subscription on the profile's synced
  folders and, when Exchange reports a change, queues a sync of the agenda that folder
  belongs to; it reconnects when Exchange closes the stream and backs off when it fails;
- one thread reads the CRM's change journal every second and queues the syncs of the
  profiles a change concerns (contacts: every profile of the organization syncing contacts;
  events: the profiles linked to the event, or its owner's);
- queued syncs are debounced: a burst of changes makes one sync, a couple of seconds later.
Notifications only trigger syncs; the sync itself reads the changes, so a notification lost
between two connections delays a change until the next scheduled run, never loses it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections

from crm.tracking import Change, RevisionCounter
from engine.mailbox import open_mailbox
from engine.mailbox.base import FolderInfo, MailboxError
from engine.models import Agenda, Link
from engine.records import Kind
from profiles.models import SyncProfile

log = logging.getLogger(__name__)

Enqueue = Callable[[SyncProfile, str], Any]
# Changed CRM events of one organization looked up one by one (their links and owners) in one
# tick; past that, every calendar of the organization is queued.
EVENTS_LOOKED_UP = 5000


def _default_enqueue(profile: SyncProfile, agenda: str) -> Any:
    from engine.jobs import enqueue

    return enqueue(profile, agenda, trigger="change")


def watched_folders(profile: SyncProfile) -> dict[str, tuple[str, FolderInfo]]:
    """Folder id -> (agenda, folder) for the profile's enabled agendas."""
    folders: dict[str, tuple[str, FolderInfo]] = {}
    if profile.sync_contacts:
        c = profile.contactsettings
        folders[c.folder_id] = (Agenda.CONTACTS, FolderInfo(c.folder_id, c.folder_path,
                                                            Kind.CONTACTS))
    if profile.sync_calendar:
        c = profile.calendarsettings
        folders[c.folder_id] = (Agenda.CALENDAR, FolderInfo(c.folder_id, c.folder_path,
                                                            Kind.CALENDAR))
    if profile.import_mail:
        for folder_id, path in profile.mailsettings.folders():
            folders[folder_id] = (Agenda.MAIL, FolderInfo(folder_id, path, Kind.MAIL))
    return folders


class Listener:
    def __init__(self, enqueue: Enqueue | None = None, *, debounce: float = 2.0,
                 minutes: int = 30, crm_poll: float = 1.0, refresh: float = 60.0) -> None:
        self.enqueue = enqueue or _default_enqueue
        self.debounce = debounce
        self.minutes = minutes
        self.crm_poll = crm_poll
        self.refresh = refresh
        self.stop = threading.Event()
        self._due: dict[tuple[int, str], float] = {}
        self._lock = threading.Lock()
        self._watchers: dict[int, threading.Thread] = {}

    # --- queueing, debounced ----------------------------------------------------------------
    def trigger(self, profile_id: int, agenda: str) -> None:
        with self._lock:
            self._due.setdefault((profile_id, agenda), time.monotonic() + self.debounce)

    def _flush(self) -> None:
        now = time.monotonic()
        with self._lock:
            ready = [key for key, when in self._due.items() if when <= now]
            for key in ready:
                del self._due[key]
        for profile_id, agenda in ready:
            profile = SyncProfile.objects.filter(pk=profile_id, active=True).first()
            if profile is not None:
                try:
                    self.enqueue(profile, agenda)
                except Exception:   # the broker may be down a moment: the schedule catches up
                    log.exception("Could not queue a sync of %s %s", profile, agenda)

    # --- watching mailboxes -----------------------------------------------------------------
    def _watch(self, profile_id: int) -> None:
        delay = 5.0
        while not self.stop.is_set():
            close_old_connections()
            profile = SyncProfile.objects.select_related("connection").filter(
                pk=profile_id, active=True).first()
            if profile is None:
                return
            folders = watched_folders(profile)
            if not folders:
                return
            try:
                with open_mailbox(profile) as mailbox:
                    for changed in mailbox.watch([f for _, f in folders.values()],
                                                 minutes=self.minutes):
                        for folder_id in changed:
                            self.trigger(profile_id, folders[folder_id][0])
                        if self.stop.is_set():
                            return
                delay = 5.0
            except NotImplementedError:
                return   # this backend cannot watch: the schedule alone syncs it
            except MailboxError as exc:
                log.warning("Watching %s failed (%s); trying again in %.0f s", profile,
                            exc.message, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, 300.0)
            except Exception:
                log.exception("Watching %s failed", profile)
                self.stop.wait(delay)
                delay = min(delay * 2, 300.0)

    def _start_watchers(self) -> None:
        active = set(SyncProfile.objects.filter(active=True).values_list("pk", flat=True))
        for profile_id in active:
            thread = self._watchers.get(profile_id)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=self._watch, args=(profile_id,),
                                          name=f"watch-{profile_id}", daemon=True)
                self._watchers[profile_id] = thread
                thread.start()

    # --- watching the CRM -------------------------------------------------------------------
    def _crm_changes(self, seen: dict[int, int]) -> dict[int, int]:
        """Queue the syncs concerned by journal rows newer than `seen` (organization -> the
        last revision looked at); return the revisions looked at now.

        Not by row id: the journal keeps one row per object and an edit moves that row to a
        new revision in place, so only a newly created object gets a new row id. A counter
        visible at revision R means every write up to R has committed (allocate_revision
        locks the counter until its write commits), so the rows up to R are all there."""
        current = dict(RevisionCounter.objects.values_list("organization_id", "value"))
        for organization_id, revision in current.items():
            since = seen.get(organization_id, 0)
            if revision > since:
                self._organization_changes(organization_id, since, revision)
        return current

    def _organization_changes(self, organization_id: int, since: int, until: int) -> None:
        rows = Change.objects.filter(organization_id=organization_id, revision__gt=since,
                                     revision__lte=until)
        if rows.filter(kind=Change.Kind.PERSON).exists():
            for profile_id in SyncProfile.objects.filter(
                    organization_id=organization_id, active=True, sync_contacts=True
            ).values_list("pk", flat=True):
                self.trigger(profile_id, Agenda.CONTACTS)
        events = list(rows.filter(kind=Change.Kind.EVENT)
                      .values_list("object_id", flat=True)[:EVENTS_LOOKED_UP + 1])
        if not events:
            return
        calendars = SyncProfile.objects.filter(organization_id=organization_id, active=True,
                                               sync_calendar=True)
        if len(events) > EVENTS_LOOKED_UP:
            # A bulk change: every calendar of the organization is cheaper than the look-up
            # (a sync with nothing to do costs one request).
            concerned = set(calendars.values_list("pk", flat=True))
        else:
            from crm.models import Event

            linked = set(Link.objects.filter(agenda=Agenda.CALENDAR,
                                             crm_key__in=[str(e) for e in events],
                                             profile__organization_id=organization_id)
                         .values_list("profile_id", flat=True))
            owners = set(Event.objects.filter(pk__in=events).values_list("owner_id", flat=True))
            concerned = linked | set(calendars.filter(crm_user_id__in=owners)
                                     .values_list("pk", flat=True))
        for profile_id in concerned:
            self.trigger(profile_id, Agenda.CALENDAR)

    # --- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        """Until `stop` is set: watch, poll the CRM, queue what is due."""
        seen = dict(RevisionCounter.objects.values_list("organization_id", "value"))
        next_refresh = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_refresh:
                self._start_watchers()
                next_refresh = now + self.refresh
            try:
                seen = self._crm_changes(seen)
                self._flush()
            except Exception:   # a database hiccup: try again on the next tick
                log.exception("The listener's tick failed")
                close_old_connections()
            self.stop.wait(min(self.crm_poll, self.debounce / 2))
