"""Notification subscriptions and the per-mailbox event log behind them.

Exchange keeps a per-mailbox event table; a subscription is a cursor into it plus a
filter (folders, event types). We model exactly that:

* `NotificationHub` lives on the `Store` (one per reset) and is fed by the store's
  mutation paths (`add_item`, `remove_item`, `move_item`, `updated`).
* Events are only logged for mailboxes that have (or had) a subscription, and the log
  is trimmed to what live subscriptions still need plus a small tail (`RETAIN`) so that
  `Subscribe` with an older watermark can resume. `MAX_EVENTS` is a hard cap: a
  subscription that falls that far behind gets `ErrorMissedNotificationEvents`.
* Watermarks are opaque base64 strings naming mailbox, subscription and event number.

All methods run under `Store.lock`; streaming connections wait on `Store.changed`
(a Condition over that lock), which every mutation notifies.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import json
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import ids
from .timeutil import now

if TYPE_CHECKING:   # store.py imports this module
    from .store import Folder, Item, Store

EVENT_TYPES = ("CopiedEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent",
               "NewMailEvent", "FreeBusyChangedEvent", "StatusEvent")
RETAIN = 256            # events kept per mailbox beyond what live subscriptions need
MAX_EVENTS = 10_000     # hard cap per mailbox, whatever subscriptions still need
STREAMING_IDLE_MINUTES = 30   # a streaming subscription expires this long after its last connection


class WatermarkError(ValueError):
    pass


@dataclass(frozen=True)
class Event:
    seq: int
    kind: str                       # element name: CreatedEvent, MovedEvent, ...
    mailbox: str
    item_id: str
    changekey: str
    folder_id: str
    folder_changekey: str
    timestamp: dt.datetime
    old_item_id: str | None = None
    old_changekey: str | None = None
    old_folder_id: str | None = None
    old_folder_changekey: str | None = None


@dataclass
class Subscription:
    id: str
    kind: str                       # "pull" | "streaming"
    mailbox: str
    owner: str                      # principal that created it (user address or app:client_id)
    event_types: frozenset[str]
    folder_ids: frozenset[str] | None   # None = SubscribeToAllFolders
    cursor: int                     # last event acknowledged (pull) or written (streaming)
    timeout_minutes: int
    expires_at: float | None = None     # time.monotonic(); None while a stream is attached
    stream_token: int = 0           # bumped by every GetStreamingEvents connection
    missed: bool = False            # events it still needed were dropped (MAX_EVENTS)
    backend: str = ""               # the mailbox server holding it (affinity.py)

    def matches(self, event: Event) -> bool:
        if event.kind not in self.event_types:
            return False
        if self.folder_ids is None:
            return True
        return (event.folder_id in self.folder_ids
                or (event.old_folder_id is not None and event.old_folder_id in self.folder_ids))


@dataclass
class _MailboxLog:
    events: deque[Event] = field(default_factory=deque)
    dropped_upto: int = 0           # highest seq no longer in `events`


class NotificationHub:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.subscriptions: dict[str, Subscription] = {}
        self.logs: dict[str, _MailboxLog] = {}
        self.seq = 0                # one counter for all mailboxes: watermarks stay ordered
        self.closed = False
        self._moving = False

    # --- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Store reset or server shutdown: end every subscription and wake open streams."""
        with self.store.lock:
            self.closed = True
            self.subscriptions.clear()
            self.logs.clear()
            self.store.changed.notify_all()

    # --- watermarks ---------------------------------------------------------------------
    @staticmethod
    def watermark(sub: Subscription, seq: int) -> str:
        raw = json.dumps({"m": sub.mailbox, "s": sub.id, "n": seq}, separators=(",", ":"))
        return base64.b64encode(raw.encode()).decode()

    @staticmethod
    def parse_watermark(value: str) -> tuple[str, str, int]:
        try:
            data = json.loads(base64.b64decode(value.strip(), validate=True))
            return str(data["m"]), str(data["s"]), int(data["n"])
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise WatermarkError(value) from exc

    # --- subscriptions ------------------------------------------------------------------
    def expire(self) -> None:
        """Drop subscriptions whose timeout ran out (checked lazily on every access)."""
        t = time.monotonic()
        gone = [s for s in self.subscriptions.values()
                if s.expires_at is not None and t >= s.expires_at]
        for sub in gone:
            self.remove(sub.id)

    def get(self, sub_id: str) -> Subscription | None:
        self.expire()
        return self.subscriptions.get(sub_id)

    def subscribe(self, kind: str, mailbox: str, owner: str, event_types: set[str],
                  folder_ids: set[str] | None, timeout_minutes: int, minute: float,
                  start: int | None = None) -> Subscription:
        """`start` resumes after an earlier watermark's event (already validated)."""
        self.expire()
        mailbox = mailbox.lower()
        self.logs.setdefault(mailbox, _MailboxLog())
        sub = Subscription(id=ids.subscription_id(), kind=kind, mailbox=mailbox, owner=owner,
                           event_types=frozenset(event_types),
                           folder_ids=frozenset(folder_ids) if folder_ids is not None else None,
                           cursor=self.seq if start is None else start,
                           timeout_minutes=timeout_minutes)
        self.touch(sub, minute)
        self.subscriptions[sub.id] = sub
        return sub

    def resume_point(self, mailbox: str, watermark: str) -> int:
        """Validate a Subscribe watermark: same mailbox, and its events still logged."""
        wm_mailbox, _sub_id, seq = self.parse_watermark(watermark)
        log = self.logs.get(mailbox.lower())
        if wm_mailbox != mailbox.lower() or log is None or seq > self.seq \
                or seq < log.dropped_upto:
            raise WatermarkError(watermark)
        return seq

    def touch(self, sub: Subscription, minute: float) -> None:
        """Restart the subscription's timeout (pull: every GetEvents; streaming: on close)."""
        minutes = sub.timeout_minutes if sub.kind == "pull" else STREAMING_IDLE_MINUTES
        sub.expires_at = time.monotonic() + minutes * minute

    def remove(self, sub_id: str) -> None:
        sub = self.subscriptions.pop(sub_id, None)
        if sub is not None:
            self._trim(sub.mailbox)
            # Wake a stream that serves it, so it can answer ConnectionStatus Closed.
            with self.store.lock:
                self.store.changed.notify_all()

    def attach(self, sub: Subscription) -> int:
        """A GetStreamingEvents connection takes the subscription over (Exchange allows one)."""
        sub.stream_token += 1
        sub.expires_at = None
        with self.store.lock:
            self.store.changed.notify_all()   # the previous connection must notice
        return sub.stream_token

    def detach(self, sub: Subscription, token: int, minute: float) -> None:
        if sub.stream_token == token and self.subscriptions.get(sub.id) is sub:
            self.touch(sub, minute)

    # --- reading events -----------------------------------------------------------------
    def pending(self, sub: Subscription, after: int, limit: int) -> tuple[list[Event], bool, int]:
        """Matching events after `after`: (page, more, seq a caller can safely resume from).

        The resume point skips events the subscription filters out, so an idle folder does
        not make every later call rescan the same non-matching events.
        """
        log = self.logs.get(sub.mailbox)
        if log is None:
            return [], False, after
        page: list[Event] = []
        more = False
        last = after
        for event in log.events:
            if event.seq <= after:
                continue
            if sub.matches(event):
                if len(page) == limit:
                    more = True
                    break
                page.append(event)
            last = event.seq
        if not more:
            last = max(last, self.seq)
        return page, more, last

    def acknowledge(self, sub: Subscription, seq: int) -> None:
        if seq > sub.cursor:
            sub.cursor = seq
            self._trim(sub.mailbox)

    def is_stale(self, sub: Subscription, seq: int) -> bool:
        """A watermark from before events this mailbox no longer keeps."""
        log = self.logs.get(sub.mailbox)
        return log is None or seq < log.dropped_upto or seq > self.seq

    # --- recording (called by Store) ----------------------------------------------------
    def item_created(self, folder: Folder, item: Item, new_mail: bool = False) -> None:
        if self._moving:
            return
        self._emit("CreatedEvent", folder, item)
        if new_mail:
            # Exchange reports a delivery both as a new item and as new mail.
            self._emit("NewMailEvent", folder, item)

    def item_deleted(self, folder: Folder, item: Item) -> None:
        if not self._moving:
            self._emit("DeletedEvent", folder, item)

    def item_modified(self, folder: Folder, item: Item) -> None:
        if not self._moving:
            self._emit("ModifiedEvent", folder, item)

    @contextlib.contextmanager
    def moving(self, item: Item) -> Iterator[None]:
        """Store.move_item is delete + create with a new id; report it as one MovedEvent."""
        source = self.store.folders[item.folder_id]
        old_id, old_changekey = item.id, item.changekey
        self._moving = True
        try:
            yield
        finally:
            self._moving = False
        target = self.store.folders[item.folder_id]
        if source.mailbox != target.mailbox:
            # Across mailboxes Exchange copies and deletes: each side sees its own event.
            self._emit("DeletedEvent", source, item, item_id=old_id, changekey=old_changekey)
            self._emit("CreatedEvent", target, item)
            return
        self._emit("MovedEvent", target, item, old_item_id=old_id,
                   old_changekey=old_changekey, old_folder_id=source.id,
                   old_folder_changekey=source.changekey)

    @contextlib.contextmanager
    def copying(self, original: Item, copy: Item) -> Iterator[None]:
        """CopyItem adds a new item (Store.add_item): reported as one CopiedEvent naming the
        original as the old item, not as a CreatedEvent (EWS CopiedEvent, MovedCopiedEventType)."""
        self._moving = True
        try:
            yield
        finally:
            self._moving = False
        source = self.store.folders[original.folder_id]
        self._emit("CopiedEvent", self.store.folders[copy.folder_id], copy,
                   old_item_id=original.id, old_changekey=original.changekey,
                   old_folder_id=source.id, old_folder_changekey=source.changekey)

    def _emit(self, kind: str, folder: Folder, item: Item, item_id: str | None = None,
              changekey: str | None = None, **old: str) -> None:
        log = self.logs.get(folder.mailbox)
        if log is None or self.closed:
            return   # nobody ever subscribed to this mailbox: nothing to keep
        with self.store.lock:
            self.seq += 1
            log.events.append(Event(seq=self.seq, kind=kind, mailbox=folder.mailbox,
                                    item_id=item_id or item.id,
                                    changekey=changekey or item.changekey,
                                    folder_id=folder.id, folder_changekey=folder.changekey,
                                    timestamp=now(), **old))
            self._trim(folder.mailbox)
            self.store.changed.notify_all()

    def _trim(self, mailbox: str) -> None:
        log = self.logs.get(mailbox)
        if log is None:
            return
        live = [s for s in self.subscriptions.values() if s.mailbox == mailbox]
        floor = min((s.cursor for s in live), default=None)
        events = log.events
        while events and (len(events) > MAX_EVENTS
                          or (len(events) > RETAIN and (floor is None or events[0].seq <= floor))):
            dropped = events.popleft()
            log.dropped_upto = dropped.seq
            for sub in live:
                if sub.cursor < dropped.seq and sub.matches(dropped):
                    sub.missed = True
