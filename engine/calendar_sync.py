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
from engine.crmstore.base import CrmChange, CrmRecord, CrmWrite
from engine.mailbox.base import ChangePage, ChangeType, ItemChange, ItemRef
from engine.models import Agenda, Link
from engine.planner import Side
from engine.records import EventRecord, Kind, Record, RecurrenceRule
from engine.runner import BATCH, AgendaSync
from profiles.models.agendas import CalendarSettings

EVENT_SYNCED = frozenset({
    "subject", "start", "end", "time_zone", "all_day", "location", "body", "private",
    "categories", "attendees", "uid", "recurrence", "exceptions", "deleted_occurrences"})


class CalendarSync(AgendaSync):
    agenda = Agenda.CALENDAR
    kind = Kind.CALENDAR

    def __init__(self, *args: Any, today: dt.date | None = None, **kwargs: Any) -> None:
        self._today = today
        super().__init__(*args, **kwargs)
        cal: CalendarSettings = self.settings
        zone = zoneinfo.ZoneInfo(django_settings.TIME_ZONE)
        today = self._today or dt.datetime.now(zone).date()
        self.today = today
        self.window = (
            dt.datetime.combine(today - dt.timedelta(days=cal.days_past), dt.time(), zone)
            .astimezone(dt.UTC),
            dt.datetime.combine(today + dt.timedelta(days=cal.days_future + 1), dt.time(), zone)
            .astimezone(dt.UTC))
        self.paired_only = cal.scope == CalendarSettings.Scope.PAIRED
        pairings = list(self.profile.category_pairings.select_related("crm_category"))
        self.to_crm = {p.exchange_category.lower(): p.crm_category.name for p in pairings}
        self.to_exchange = {p.crm_category.name.lower(): p.exchange_category for p in pairings}
        self.default_category = cal.default_category.name if cal.default_category_id else ""

    # --- what the calendar agenda says --------------------------------------------------------
    def agenda_settings(self) -> Any:
        return self.profile.calendarsettings

    def synced_fields(self) -> frozenset[str]:
        return EVENT_SYNCED

    def one_way_fields(self) -> dict[str, Side]:
        one_way = {"attendees": Side.REMOTE, "uid": Side.REMOTE}
        if not self.paired_only_setting():
            one_way["categories"] = Side.CRM
        return one_way

    def paired_only_setting(self) -> bool:
        return self.profile.calendarsettings.scope == CalendarSettings.Scope.PAIRED

    def incoming(self, record: Record) -> Record:
        assert isinstance(record, EventRecord)
        if self.paired_only:
            mapped = tuple(dict.fromkeys(self.to_crm[c.lower()] for c in record.categories
                                         if c.lower() in self.to_crm))
        else:
            mapped = (self.default_category,) if self.default_category else ()
        return dataclasses.replace(record, categories=mapped)

    def outgoing(self, record: Record, crm_key: str) -> Record:
        record = super().outgoing(record, crm_key)
        assert isinstance(record, EventRecord)
        categories = tuple(self.to_exchange.get(c.lower(), c) for c in record.categories)
        # Exchange has no attendees from the CRM: see the module's docstring.
        return dataclasses.replace(record, categories=categories, attendees=(), organizer="")

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
        assert isinstance(record, EventRecord)
        if record.cancelled or record.response == "declined":
            return False   # not a meeting the user goes to (a linked one: the planner says)
        if self.settings.skip_private and record.private:
            return False
        if self.paired_only and not record.categories:
            return False
        return self.in_window(record)

    def crm_in_scope(self, records: dict[str, CrmRecord]) -> set[str]:
        own = self.crm.in_scope(self.kind, list(records))
        # A meeting another user owns is in this profile's scope once linked to it.
        linked = set(Link.objects.filter(profile=self.profile, agenda=self.agenda,
                                         crm_key__in=list(records))
                     .values_list("crm_key", flat=True))
        out = set()
        for key, found in records.items():
            record = found.record
            assert isinstance(record, EventRecord)
            if key not in own and key not in linked:
                continue
            if self.paired_only and not any(c.lower() in self.to_exchange
                                            for c in record.categories):
                continue
            if self.in_window(record):
                out.add(key)
        return out

    def _others_links(self, crm_keys: list[str]) -> Any:
        """Other synced users' live links to these CRM events (one CRM per organization)."""
        return (Link.objects.filter(profile__organization_id=self.profile.organization_id,
                                    profile__active=True, agenda=self.agenda,
                                    crm_key__in=crm_keys, state=Link.State.ACTIVE)
                .exclude(profile=self.profile))

    def shared_keys(self, crm_keys: list[str]) -> set[str]:
        if not crm_keys:
            return set()
        return set(self._others_links(crm_keys).values_list("crm_key", flat=True))

    def leave(self, crm_key: str) -> CrmWrite:
        # The event passes to the organizer's user if synced, else to the first to link it.
        heir = (self._others_links([crm_key])
                .order_by(F("organizes").desc(nulls_last=True), "created", "pk")
                .values_list("profile__crm_user_id", flat=True).first())
        return self.crm.leave_event(crm_key, self.profile.mailbox,
                                    str(heir) if heir is not None else "")

    def match_keys(self, record: Record) -> list[str]:
        assert isinstance(record, EventRecord)
        keys = [f"uid:{record.uid}"] if record.uid else []
        if record.start is not None:
            keys.append(f"at:{record.start.isoformat()}|{record.subject.strip().lower()}")
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

    def window_entries(self, pending_crm: dict[str, Any]) -> None:
        """Events that came into the window without changing: the CRM's by a query, Exchange's
        by reading the window, both leaving out what is linked already. The window moves once
        a day, so this is done by the first run of each day (and the first run ever)."""
        state = self.state
        if state is not None and state.window_checked == self.today:
            return
        linked = set(Link.objects.filter(profile=self.profile, agenda=self.agenda)
                     .values_list("crm_key", flat=True))
        for key in self.crm.events_in_window(*self.window):
            if key not in linked:
                pending_crm.setdefault(key, CrmChange(key, False, 0))
        # A read of Exchange's changes from no state (the first run) has just seen every
        # item of the folder: reading the window would fetch them all a second time (a
        # first import of 2,000 events spent a quarter of its time so; bench/calendar.py).
        changes = [] if getattr(self, "_read_from_scratch", False) else [
            ItemChange(ChangeType.UPSERT, ref, record)
            for ref, record in self.mailbox.read_window(
                self.folder, *self.window, known=self._linked_items,
                known_series=self._linked_series)]
        for start in range(0, len(changes), 100):
            self._remote_page(ChangePage(changes[start:start + 100], [], "", done=False),
                              pending_crm)
        # Marked done only once the CRM events found here are handled (`_sync`): they wait
        # in memory, so a run killed before then must read the window again.
        self._window_read = True

    def _read_remote(self, state: Any, remote_state: str | None, pending_crm: dict[str, Any],
                     page_size: int = BATCH) -> str | None:
        if remote_state is None:
            self._read_from_scratch = True   # the whole folder is read (window_entries)
        return super()._read_remote(state, remote_state, pending_crm, page_size)

    def _sync(self) -> bool:
        self._window_read = False
        waiting = super()._sync()
        state = self.state
        if self._window_read and state is not None and not self.dry_run:
            state.window_checked = self.today
            state.save(update_fields=["window_checked", "updated"])
        return waiting

    def _linked_items(self, refs: list[ItemRef]) -> set[str]:
        return set(Link.objects.filter(profile=self.profile, agenda=self.agenda,
                                       remote_id__in=[r.id for r in refs])
                   .values_list("remote_id", flat=True))

    def _linked_series(self, uids: list[str]) -> set[str]:
        return set(Link.objects.filter(profile=self.profile, agenda=self.agenda,
                                       remote_uid__in=uids).values_list("remote_uid", flat=True))

    def _window_records(self) -> dict[str, EventRecord]:
        if not hasattr(self, "_window_cache"):
            keys = self.crm.events_in_window(*self.window)
            self._window_cache = {k: r.record for k, r in self.crm.fetch(self.kind, keys).items()
                                  if isinstance(r.record, EventRecord)}
        return self._window_cache
