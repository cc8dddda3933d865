"""Calendar: PRODUCT.md §4.1 on the sync core.

What is particular to events:
- scope is a time window (today − days in the past … today + days in the future); an event
  that leaves it is left alone, one that enters it (the window moves every day) is found by
  reading the window, matched, never duplicated;
- a meeting is matched by its global UID, across all synced users: one CRM event per meeting;
  an event without a common UID is matched by the same subject and start;
- categories: with "all events", an Exchange category never changes the CRM category
  (imported events get the default one) while a CRM event's category is written to Exchange;
  with "only paired categories", the pairings map both ways and define the scope;
- attendees are carried one way, Exchange → CRM (they link CRM persons); writing them to
  Exchange would make meetings nobody was invited to;
- private events may be left out; series travel with their exceptions; nothing sends an
  invitation or a cancellation (the mailbox backend never asks Exchange to);
- a meeting several synced users attend is one CRM event linked to each one's copy: an
  attendee deleting or declining their copy leaves the meeting (their link and participation
  go, nothing else), while the organizer deleting or cancelling it, or the last synced copy
  going, deletes the CRM event (the planner's `_meeting_left`); a declined or cancelled copy
  is never imported.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from typing import Any

from django.conf import settings as django_settings
from django.db.models import F

from engine import recurrence
from engine.agendas.base import AgendaRules, WindowEntries
from engine.crmstore.base import CrmBackend, CrmRecord, CrmWrite
from engine.crmstore.unheld import compared, without_unheld
from engine.mailbox.base import ItemRef, MailboxBackend
from engine.models import Agenda, FolderState
from engine.plan_actions import Side
from engine.records import EventRecord, Kind, Record, RecurrenceRule
from engine.run.flow import TwoWaySync
from profiles.models import SyncProfile
from profiles.models.agendas import CalendarSettings

EVENT_SYNCED = frozenset({
    "subject", "start", "end", "time_zone", "all_day", "location", "body", "private",
    "categories", "attendees", "uid", "recurrence", "exceptions", "deleted_occurrences"})


class NotAnEvent(TypeError):
    """A calendar rule was handed a record of another kind: a backend bug, not user data."""


def _event(record: Record | None) -> EventRecord:
    if not isinstance(record, EventRecord):
        raise NotAnEvent(f"Expected an event, got {type(record).__name__}.")
    return record


class CalendarRules(AgendaRules):
    agenda = Agenda.CALENDAR
    kind = Kind.CALENDAR

    def __init__(self, profile: SyncProfile, crm: CrmBackend, *,
                 today: dt.date | None = None) -> None:
        # What the CRM cannot hold (a single event's zone, the all-day flag) is neither
        # handed to it nor compared: Exchange keeps its own (engine/crmstore/unheld.py).
        self.left_out = crm.unheld(self.kind) & EVENT_SYNCED
        self.synced_fields = compared(self.kind, EVENT_SYNCED, self.left_out)
        super().__init__(profile, crm)
        cal: CalendarSettings = self.settings
        zone = zoneinfo.ZoneInfo(django_settings.TIME_ZONE)
        self.today = today or dt.datetime.now(zone).date()
        self.window = (
            dt.datetime.combine(self.today - dt.timedelta(days=cal.days_past), dt.time(), zone)
            .astimezone(dt.UTC),
            dt.datetime.combine(self.today + dt.timedelta(days=cal.days_future + 1), dt.time(),
                                zone).astimezone(dt.UTC))
        pairings = list(self.profile.category_pairings.select_related("crm_category"))
        self.to_crm = {p.exchange_category.lower(): p.crm_category.name for p in pairings}
        self.to_exchange = {p.crm_category.name.lower(): p.exchange_category for p in pairings}
        self.default_category = cal.default_category.name if cal.default_category_id else ""
        self._window_cache: dict[str, EventRecord] | None = None

    @property
    def paired_only(self) -> bool:
        return self.settings.scope == CalendarSettings.Scope.PAIRED

    # --- what the calendar agenda says --------------------------------------------------------
    def agenda_settings(self) -> Any:
        return self.profile.calendarsettings

    def one_way_fields(self) -> dict[str, Side]:
        one_way = {"attendees": Side.REMOTE, "uid": Side.REMOTE}
        if not self.paired_only:
            one_way["categories"] = Side.CRM
        return one_way

    def incoming(self, record: Record) -> Record:
        event = _event(record)
        if self.paired_only:
            mapped = tuple(dict.fromkeys(self.to_crm[c.lower()] for c in event.categories
                                         if c.lower() in self.to_crm))
        else:
            mapped = (self.default_category,) if self.default_category else ()
        return without_unheld(dataclasses.replace(event, categories=mapped), self.left_out)

    def outgoing(self, record: Record, crm_key: str) -> Record:
        event = _event(super().outgoing(record, crm_key))
        categories = tuple(self.to_exchange.get(c.lower(), c) for c in event.categories)
        # Exchange has no attendees from the CRM: see the module's docstring.
        return dataclasses.replace(event, categories=categories, attendees=(), organizer="")

    def in_window(self, record: EventRecord) -> bool:
        if record.start is None or record.end is None:
            return False
        start, end = self.window
        if record.recurrence is not None:
            duration = max(record.end - record.start, dt.timedelta(0))
            return recurrence.overlaps(record.recurrence, record.start, duration,
                                       record.time_zone or django_settings.TIME_ZONE, start, end)
        return record.start < end and record.end > start

    def snapshot_in_scope(self, snapshot: dict[str, Any]) -> bool:
        """An event as its link remembers it, in the window? Read from its canonical data:
        start, end, zone and recurrence are all the window asks."""
        try:
            start = dt.datetime.fromisoformat(snapshot["start"])
            end = dt.datetime.fromisoformat(snapshot["end"])
            rule = snapshot.get("recurrence")
            if rule is not None:
                dates = {k: dt.date.fromisoformat(rule[k]) if rule.get(k) else None
                         for k in ("start", "end")}
                rule = RecurrenceRule(**{**rule, **dates,
                                         "weekdays": tuple(rule.get("weekdays") or ())})
        except (KeyError, TypeError, ValueError):
            return True   # not enough to tell: as before, the deletion is carried over
        return self.in_window(EventRecord(start=start, end=end, recurrence=rule,
                                          time_zone=snapshot.get("time_zone") or ""))

    def remote_in_scope(self, record: Record) -> bool:
        event = _event(record)
        if event.cancelled or event.response == "declined":
            return False   # not a meeting the user goes to (a linked one: the planner says)
        if self.settings.skip_private and event.private:
            return False
        if self.paired_only and not event.categories:
            return False
        return self.in_window(event)

    def crm_in_scope(self, records: dict[str, CrmRecord]) -> set[str]:
        own = self.crm.in_scope(self.kind, list(records))
        # A meeting another user owns is in this profile's scope once linked to it.
        linked = self.links.linked_crm_keys(records)
        out = set()
        for key, found in records.items():
            event = _event(found.record)
            if key not in own and key not in linked:
                continue
            if self.paired_only and not any(c.lower() in self.to_exchange
                                            for c in event.categories):
                continue
            if self.in_window(event):
                out.add(key)
        return out

    def shared_keys(self, crm_keys: list[str]) -> set[str]:
        if not crm_keys:
            return set()
        return set(self.links.others_links(crm_keys).values_list("crm_key", flat=True))

    def leave(self, crm_key: str) -> CrmWrite:
        # The event passes to the organizer's user if synced, else to the first to link it.
        heir = (self.links.others_links([crm_key])
                .order_by(F("organizes").desc(nulls_last=True), "created", "pk")
                .values_list("profile__crm_user_id", flat=True).first())
        return self.crm.leave_event(crm_key, self.profile.mailbox,
                                    str(heir) if heir is not None else "")

    def match_keys(self, record: Record) -> list[str]:
        event = _event(record)
        keys = [f"uid:{event.uid}"] if event.uid else []
        if event.start is not None:
            keys.append(f"at:{event.start.isoformat()}|{event.subject.strip().lower()}")
        return keys

    def crm_candidates(self, keys: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {k: [] for k in keys}
        by_uid = self.crm.find_by_uid([k[4:] for k in keys if k.startswith("uid:")])
        for uid, crm_key in by_uid.items():
            found[f"uid:{uid}"] = [crm_key]
        at_keys = [k for k in keys if k.startswith("at:")]
        if at_keys:
            for crm_key, record in self._window_records().items():
                # An event with a UID would have matched by it: only UID-less ones here.
                if not record.uid and record.start is not None:
                    key = f"at:{record.start.isoformat()}|{record.subject.strip().lower()}"
                    if key in found:
                        found[key].append(crm_key)
        return found

    def candidate_fields(self, record: Record) -> dict[str, Any]:
        # The organizer is not synced, but it is how a person tells two meetings apart.
        fields = super().candidate_fields(record)
        if isinstance(record, EventRecord) and record.organizer:
            fields["organizer"] = record.organizer
        return fields

    def describe_key(self, key: str) -> str:
        return "the same meeting UID" if key.startswith("uid:") else "the same subject and start"

    def window_entries(self, state: FolderState, mailbox: MailboxBackend,
                       read_from_scratch: bool) -> WindowEntries | None:
        """Events that came into the window without changing: the CRM's by a query, Exchange's
        by reading the window, both leaving out what is linked already. The window moves once
        a day, so this is done by the first run of each day (and the first run ever)."""
        if state.window_checked == self.today:
            return None
        linked = self.links.linked_crm_keys()
        crm_keys = [key for key in self.crm.events_in_window(*self.window)
                    if key not in linked]
        # A read of Exchange's changes from no state (the first run) has just seen every
        # item of the folder: reading the window would fetch them all a second time (a
        # first import of 2,000 events spent a quarter of its time so; bench/calendar.py).
        items = [] if read_from_scratch else list(mailbox.read_window(
            self.folder, *self.window, known=self._linked_items,
            known_series=self.links.linked_uids))
        return WindowEntries(crm_keys, items, self.today)

    def _linked_items(self, refs: list[ItemRef]) -> set[str]:
        return self.links.linked_remote_ids(r.id for r in refs)

    def _window_records(self) -> dict[str, EventRecord]:
        if self._window_cache is None:
            keys = self.crm.events_in_window(*self.window)
            self._window_cache = {k: r.record for k, r in self.crm.fetch(self.kind, keys).items()
                                  if isinstance(r.record, EventRecord)}
        return self._window_cache


class CalendarSync(TwoWaySync):
    """One run of a profile's calendar: the two-way sync with the calendar rules, `today`
    placing the window (tests move it)."""

    def __init__(self, profile: SyncProfile, mailbox: MailboxBackend, crm: CrmBackend, *,
                 today: dt.date | None = None, **options: Any) -> None:
        super().__init__(CalendarRules(profile, crm, today=today), mailbox, **options)
