"""Near-real-time syncs: watch mailboxes and the CRM, and queue a sync when something changed.

`manage.py listen` runs a `Listener`:
- mailboxes are watched in groups, one thread and one server connection per group: the
  active profiles of a connection whose service account acts for every mailbox
  (impersonation) share a group, up to the backend's group size (EWS: Microsoft's 200 per
  affinity group; more make more groups); a profile signing in with its own credentials is
  a group of its own. The thread subscribes each profile's synced folders (EWS: one
  streaming subscription per mailbox, made as that mailbox) and reads them all through one
  stream (one GetStreamingEvents request); a change queues a sync of the agenda of that
  profile's folder. It reconnects when the server closes the stream, resubscribes what the
  server forgot (expired subscriptions), and backs off when the connection fails;
- every `refresh` seconds, and within a second of any profile or connection being saved
  (the newest `updated` stamp moved, see `profiles/freshness.py`), the groups are fitted to
  the active profiles as they are now: a profile that joins or leaves a group, or whose
  folders or connection changed, makes its stream reopen at the next word from the server
  (a keep-alive at the latest); the changed profile is subscribed afresh, the others keep
  their subscriptions. A folder watched from then on gets one sync at once: edits made in
  it before its subscription existed were never notified;
- a profile that cannot be watched (its mailbox is gone, no right to impersonate it) is
  tried again later, backing off, while the rest of its group streams on; a profile whose
  backend cannot watch at all is left to the schedule;
- one thread reads the CRM's change journal every second and queues the syncs of the
  profiles a change concerns (contacts: every profile of the organization syncing contacts;
  events: the profiles linked to the event, or its owner's);
- Microsoft Graph posts its changes to this server instead: a thread keeps a subscription
  per synced folder of each Graph profile, and every tick reads the journal the
  notifications left (engine/graph_watch.py);
- queued syncs are debounced: a burst of changes makes one sync, a couple of seconds later;
  nothing is queued for a paused agenda (`engine.pausing`).
Notifications only trigger syncs; the sync itself reads the changes, so a notification lost
between two connections delays a change until the next scheduled run, never loses it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import close_old_connections, connections
from django.db.models import Count, Max, Q

from engine import graph_watch, pausing
from engine.crmstore import registry
from engine.crmstore.base import ChangeWatch, OrganizationChanges
from engine.mailbox import access_for, backend_class
from engine.mailbox.base import (
    FolderInfo,
    MailboxBackend,
    MailboxError,
    WatchReport,
    WatchTarget,
)
from engine.models import Agenda, Link
from engine.records import Kind
from profiles.models import SyncProfile

log = logging.getLogger(__name__)

Enqueue = Callable[[SyncProfile, str], Any]
# Changed CRM events of one organization looked up one by one (their links and owners) in one
# tick; past that, every calendar of the organization is queued.
EVENTS_LOOKED_UP = 5000
FIRST_BACKOFF, MAX_BACKOFF = 5.0, 300.0   # seconds before watching a failed one again


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


def watch_spec(profile: SyncProfile) -> tuple[object, ...]:
    """What watching the profile depends on: when it changes, the profile is subscribed
    again with what it has now. Only that: every reopening of a group's stream leaves a
    moment in which an event may go to the connection being closed, so a save that changes
    none of it (the interval, a direction) must not reopen the stream."""
    try:
        folders = tuple(sorted((folder_id, agenda)
                               for folder_id, (agenda, _) in watched_folders(profile).items()))
    except ObjectDoesNotExist:
        # An agenda without its settings row (made behind the models' back): its group
        # thread says so; here it must not stop every other profile being refreshed.
        folders = ()
    return (profile.mailbox, profile.mailbox_username, profile.mailbox_secret_token,
            profile.connection.updated, profile.connection.kind, folders)


def profiles_stamp() -> tuple[object, ...]:
    """Moves whenever a profile or a connection is saved, or a profile switched on or off:
    one cheap query the listener makes every tick to know when to refresh at once."""
    return tuple(SyncProfile.objects.aggregate(
        active=Count("pk", filter=Q(active=True)), profiles=Max("updated"),
        connections=Max("connection__updated")).values())


# A group's key: ("connection", connection id, chunk) for profiles sharing their connection's
# stream, ("profile", profile id, 0) for a profile on a stream of its own.
GroupKey = tuple[str, int, int]
GroupOwner = tuple[str, int]   # a key without its chunk: what the profiles share


@dataclass
class _Group:
    """Profiles watched together: one thread, one backend object, one stream."""

    key: GroupKey
    kind: str                                  # the connection's kind: which backend
    members: set[int] = field(default_factory=set)
    version: int = 0                           # bumped when `members` or `specs` change
    specs: dict[int, tuple[object, ...]] = field(default_factory=dict)   # watch_spec of each
    thread: threading.Thread | None = None


@dataclass
class _Wanted:
    """The active profiles as the database has them now, by what may share a stream (a
    connection that signs in itself, or the profile alone), in mailbox order."""

    members: dict[GroupOwner, list[int]] = field(default_factory=dict)
    sizes: dict[GroupOwner, int] = field(default_factory=dict)      # each owner's group size
    kinds: dict[GroupOwner, str] = field(default_factory=dict)      # and backend
    specs: dict[int, tuple[object, ...]] = field(default_factory=dict)   # watch_spec of each


@dataclass
class _Backoff:
    """When each failed profile of a group is tried again, and how long it waits next time."""

    retry_at: dict[int, float] = field(default_factory=dict)
    delays: dict[int, float] = field(default_factory=dict)

    def failed(self, profile_id: int) -> float:
        delay = self.delays.get(profile_id, FIRST_BACKOFF)
        self.retry_at[profile_id] = time.monotonic() + delay
        self.delays[profile_id] = min(delay * 2, MAX_BACKOFF)
        return delay

    def waiting(self, profile_id: int) -> bool:
        """Whether the profile still waits; once its time has come, it is due for a try."""
        if self.retry_at.get(profile_id, 0.0) > time.monotonic():
            return True
        self.retry_at.pop(profile_id, None)
        return False

    def due(self) -> bool:
        now = time.monotonic()
        return any(when <= now for when in self.retry_at.values())

    def next_try(self) -> float:
        return min(self.retry_at.values(), default=time.monotonic())


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
        self._groups: dict[GroupKey, _Group] = {}
        self._unwatchable: set[GroupKey] = set()   # their backend cannot watch: schedule only
        # Graph posts its changes instead (engine/graph_watch.py): its subscriptions, and
        # the journal its notifications leave.
        self.graph = graph_watch.GraphWatch(self.trigger)

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
            # A paused agenda's run would only be recorded as not started: none is queued.
            if profile is not None and not pausing.is_paused(profile_id, agenda):
                try:
                    self.enqueue(profile, agenda)
                except Exception:   # the broker may be down a moment: the schedule catches up
                    log.exception("Could not queue a sync of %s %s", profile, agenda)

    # --- watching mailboxes -----------------------------------------------------------------
    def _watch_group(self, group: _Group) -> None:
        """The group's thread: stream its members' changes until it has none left."""
        backoff = _Backoff()
        delay = FIRST_BACKOFF
        mailbox: MailboxBackend | None = None
        watched: dict[int, set[str]] = {}   # each member's folder ids in the previous round
        try:
            while not self.stop.is_set():
                close_old_connections()
                with self._lock:
                    version, members = group.version, set(group.members)
                if not members:
                    return   # they all left: closing the backend below unsubscribes them
                targets, agendas = self._targets(members, backoff)
                self._sync_new_folders(agendas, watched)
                # The stream may stay open for half an hour: hold no database connection
                # (this thread's own) meanwhile.
                connections.close_all()
                if not targets:   # every member waits for its next try (or watches nothing)
                    self.stop.wait(min(max(backoff.next_try() - time.monotonic(), 0.05), 1.0))
                    continue
                try:
                    if mailbox is None:
                        mailbox = backend_class(group.kind)(targets[0].access)

                    def until(version: int = version) -> bool:
                        return self.stop.is_set() or group.version != version or backoff.due()

                    failed_now: set[int] = set()
                    for report in mailbox.watch_many(targets, minutes=self.minutes,
                                                     until=until):
                        self._queue_changes(report, agendas)
                        failed_now |= self._note_failures(report, backoff)
                    for target in targets:   # watched through a whole stream: start afresh
                        if target.key not in failed_now:
                            backoff.delays.pop(target.key, None)
                    delay = FIRST_BACKOFF
                except NotImplementedError:
                    self._unwatchable.add(group.key)   # the schedule alone syncs them
                    return
                except MailboxError as exc:
                    log.warning("Watching %s failed (%s); trying again in %.0f s",
                                self._describe(targets), exc.message, delay)
                    self.stop.wait(delay)
                    delay = min(delay * 2, MAX_BACKOFF)
                except Exception:
                    log.exception("Watching %s failed", self._describe(targets))
                    self.stop.wait(delay)
                    delay = min(delay * 2, MAX_BACKOFF)
        finally:
            if mailbox is not None:
                with contextlib.suppress(Exception):
                    mailbox.close()

    @staticmethod
    def _targets(members: set[int], backoff: _Backoff
                 ) -> tuple[list[WatchTarget], dict[int, dict[str, str]]]:
        """What to watch of these profiles now (leaving out those waiting after a failure),
        and for each, folder id -> agenda."""
        targets: list[WatchTarget] = []
        agendas: dict[int, dict[str, str]] = {}
        for profile in SyncProfile.objects.select_related("connection").filter(
                pk__in=members, active=True):
            if backoff.waiting(profile.pk):
                continue
            folders = watched_folders(profile)
            if not folders:
                continue
            agendas[profile.pk] = {folder_id: agenda for folder_id, (agenda, _) in folders.items()}
            targets.append(WatchTarget(
                key=profile.pk, access=access_for(profile.connection, profile.mailbox, profile),
                folders=tuple(folder for _, folder in folders.values())))
        return sorted(targets, key=lambda t: t.access.mailbox), agendas

    def _sync_new_folders(self, agendas: dict[int, dict[str, str]],
                          watched: dict[int, set[str]]) -> None:
        """Queue the agenda of each folder a member watches from this round on (chosen in
        the admin since): nothing notified the edits made in it before its subscription.
        The debounce and the queue give the subscription, made next, time to be in place
        before the sync reads the folder."""
        for profile_id, folders in agendas.items():
            before = watched.get(profile_id)
            if before is not None:
                for folder_id in folders.keys() - before:
                    self.trigger(profile_id, folders[folder_id])
            watched[profile_id] = set(folders)

    def _queue_changes(self, report: WatchReport, agendas: dict[int, dict[str, str]]) -> None:
        for profile_id, folder_ids in report.changed.items():
            for folder_id in folder_ids:
                agenda = agendas.get(profile_id, {}).get(folder_id)
                if agenda is not None:
                    self.trigger(profile_id, agenda)

    @staticmethod
    def _note_failures(report: WatchReport, backoff: _Backoff) -> set[int]:
        for profile_id, error in report.failed.items():
            log.warning("Cannot watch profile %s (%s); trying again in %.0f s", profile_id,
                        error.message, backoff.failed(profile_id))
        return set(report.failed)

    @staticmethod
    def _describe(targets: list[WatchTarget]) -> str:
        mailboxes = [t.access.mailbox for t in targets]
        more = f" and {len(mailboxes) - 3} more" if len(mailboxes) > 3 else ""
        return ", ".join(mailboxes[:3]) + more

    def _wanted_groups(self) -> _Wanted:
        wanted = _Wanted()
        for profile in (SyncProfile.objects.filter(active=True)
                        .select_related("connection", "contactsettings", "calendarsettings",
                                        "mailsettings")
                        .prefetch_related("mail_folders").order_by("mailbox")):
            connection = profile.connection
            size = self._group_size(connection.kind)
            # Only a service account acting for every mailbox can open one stream for many;
            # a profile with its own credentials signs in as itself, on a stream of its own.
            shared = connection.uses_own_credentials and size > 1
            owner = ("connection", connection.pk) if shared else ("profile", profile.pk)
            wanted.members.setdefault(owner, []).append(profile.pk)
            wanted.sizes[owner] = size if shared else 1
            wanted.kinds[owner] = connection.kind
            wanted.specs[profile.pk] = watch_spec(profile)
        return wanted

    @staticmethod
    def _group_size(kind: str) -> int:
        try:
            return backend_class(kind).watch_group_size
        except NotImplementedError:
            return 1   # no backend: a group of one, which finds out it cannot watch

    def _regroup(self, wanted: _Wanted) -> None:
        """Fit the groups to the profiles wanted now, moving as few as possible: a profile
        that changes group, or whose watch_spec changed, is subscribed again, and its
        group reconnects."""
        for key, group in list(self._groups.items()):
            if wanted.kinds.get(key[:2], group.kind) != group.kind:
                # The connection now leads to another backend: a new group (and thread) with
                # it, which finds out afresh whether it can watch.
                self._set_members(group, set())
                del self._groups[key]
                self._unwatchable.discard(key)
                continue
            self._set_members(group, group.members & set(wanted.members.get(key[:2], ())))
        for owner, profile_ids in wanted.members.items():
            mine = sorted((g for g in self._groups.values() if g.key[:2] == owner),
                          key=lambda g: g.key)
            placed = {profile_id for g in mine for profile_id in g.members}
            for profile_id in profile_ids:
                if profile_id in placed:
                    continue
                group = next((g for g in mine if len(g.members) < wanted.sizes[owner]), None)
                if group is None:   # the owner's groups are full: one more
                    chunk = max((g.key[2] for g in mine), default=-1) + 1
                    group = _Group(key=(owner[0], owner[1], chunk), kind=wanted.kinds[owner])
                    self._groups[group.key] = group
                    mine.append(group)
                self._set_members(group, group.members | {profile_id})
        for key in [k for k, g in self._groups.items() if not g.members]:
            del self._groups[key]   # its thread sees no members left and ends
        for group in self._groups.values():
            specs = {profile_id: wanted.specs[profile_id] for profile_id in group.members}
            if specs != group.specs:
                group.specs = specs
                group.version += 1   # its stream reopens with the members as they are now

    @staticmethod
    def _set_members(group: _Group, members: set[int]) -> None:
        if members != group.members:
            group.members = members
            group.version += 1   # its stream reopens with them

    def _start_watchers(self) -> None:
        wanted = self._wanted_groups()
        with self._lock:
            self._regroup(wanted)
            groups = list(self._groups.values())
        for group in groups:
            if group.key in self._unwatchable:
                continue
            if group.thread is None or not group.thread.is_alive():
                kind, owner, chunk = group.key
                group.thread = threading.Thread(target=self._watch_group, args=(group,),
                                                name=f"watch-{kind}-{owner}-{chunk}",
                                                daemon=True)
                group.thread.start()

    # --- watching the CRM -------------------------------------------------------------------
    def _crm_changes(self, watch: ChangeWatch) -> None:
        """Queue the syncs concerned by what changed in the CRM since the last look."""
        for changed in watch.changes():
            self._organization_changes(changed)

    def _organization_changes(self, changed: OrganizationChanges) -> None:
        organization_id = changed.organization_id
        if changed.persons:
            for profile_id in SyncProfile.objects.filter(
                    organization_id=organization_id, active=True, sync_contacts=True
            ).values_list("pk", flat=True):
                self.trigger(profile_id, Agenda.CONTACTS)
        if changed.events is not None and not changed.events:
            return
        calendars = SyncProfile.objects.filter(organization_id=organization_id, active=True,
                                               sync_calendar=True)
        if changed.events is None:
            # A bulk change: every calendar of the organization is cheaper than the look-up
            # (a sync with nothing to do costs one request).
            concerned = set(calendars.values_list("pk", flat=True))
        else:
            linked = set(Link.objects.filter(agenda=Agenda.CALENDAR,
                                             crm_key__in=list(changed.events),
                                             profile__organization_id=organization_id)
                         .values_list("profile_id", flat=True))
            owners = [int(key) for key in changed.event_owners if key.isdigit()]
            concerned = linked | set(calendars.filter(crm_user_id__in=owners)
                                     .values_list("pk", flat=True))
        for profile_id in concerned:
            self.trigger(profile_id, Agenda.CALENDAR)

    # --- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        """Until `stop` is set: watch, poll the CRM, queue what is due."""
        # One watch per kind of CRM (a kind without one leaves its changes to the schedule).
        watches = registry.change_watches(EVENTS_LOOKED_UP)
        for watch in watches:
            watch.changes()   # from now on
        next_refresh = 0.0
        stamp: tuple[object, ...] = ()
        self.graph.start(self.stop)
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                current = profiles_stamp()
                if now >= next_refresh or current != stamp:
                    # Read before the profiles: a save in between is in what _start_watchers
                    # reads, and moves the stamp again, so the next tick refreshes once more.
                    stamp = current
                    self._start_watchers()
                    next_refresh = now + self.refresh
            except Exception:   # a database hiccup: the next tick tries again
                log.exception("The listener could not read the profiles")
                close_old_connections()
            try:
                for watch in watches:
                    self._crm_changes(watch)
                self.graph.tick()
                self._flush()
            except Exception:   # a database hiccup: try again on the next tick
                log.exception("The listener's tick failed")
                close_old_connections()
            self.stop.wait(min(self.crm_poll, self.debounce / 2))
