"""A Hypothesis state machine for the calendar agenda, after `test_sync_state_machine.py`.

Random edits on both sides — CRM events through the ORM as a CRM user would (singles, weekly
series with a count, now and then an exception of a series as a child Event with its
`original_start`), Exchange items through ewsim's control plane as Outlook would — interleaved
with sync runs, some of them killed at a random checkpoint, and with the clock moving forward
(the `today` of `CalendarSync`, 1–20 days at a time, never back) so that events cross the
edges of the window (14 days back, 31 forward). The real runner talks to ewsim over HTTP and
to the real database. After every completed run and one more run, the machine checks against
its model:

- no duplicates: no two Exchange items carry one identity stamp, no two CRM events one origin
  or one meeting UID, and every record on either side belongs to exactly one model event,
  with at most one record per side;
- linked pairs hold equal synced fields (subject, start, end, zone, location, private,
  recurrence, exceptions, deleted occurrences);
- no lost edit: a field edited on one side only ends with that side's last value; a field
  edited on both sides ends with one of the two (newest change wins);
- nothing is deleted but by a deletion on one side: an event that left the window is left
  alone on both sides, whatever the clock does;
- an event inside the window is linked (copied, or matched by subject and start when the user
  entered it on both sides), unless the policies keep it apart on purpose;
- the run after a completed run has nothing to do.

Each example draws the deletion policy: "propagate" (the default for events) or "unlink"; the
other policies are the defaults (two-way, newest change wins). 200 examples by default;
CALENDAR_MACHINE_EXAMPLES=2000 runs a deeper search locally.

What the model takes as intended (PRODUCT.md §5, docs/sync.md), where the engine has a choice:

- "left the scope | any: stop syncing, touch nothing": a linked pair whose last agreed
  values lie outside the window is out of scope, so deleting one side does not delete the
  other (the survivor stays, unlinked), and a change seen outside the window unlinks the pair
  without writing anything;
- a pair unlinked by leaving the scope may be matched again later (its stamp or origin still
  names the partner); whichever side's values then win is a conflict, settled either way;
- after a killed run, any value either side had since the last check may have travelled;
- known and accepted (as for contacts): a CRM event copied to Exchange by a run killed before
  it saved the link, then deleted in the CRM, leaves its stamped copy in Exchange, left alone
  and never imported back (the runner's "copy of a CRM record that was deleted meanwhile").
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import zoneinfo
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from crm.models import CrmUser, Event
from engine import recurrence
from engine.crmstore.builtin import BuiltinCrm
from engine.models import Lease, Link, Retry, Run
from engine.records import EventRecord, Kind, RecurrenceRule, canonical
from engine.run.journal import Killed
from engine.sync import crm_for
from ewsim.testing import SimHandle
from profiles.models import MailboxConnection, Organization, SyncProfile

from .sync_helpers import SERVICE, SERVICE_PASSWORD, exchange_events, run_calendar

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("CALENDAR_MACHINE_EXAMPLES", "200"))
PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")
DAYS_PAST, DAYS_FUTURE = 14, 31          # the profile's defaults (PRODUCT.md §4.1)
START_DAY = dt.date(2026, 11, 25)
# What a linked pair must hold equal on both sides. Categories, attendees and the UID travel
# one way by design (engine/agendas/calendar.py's docstring); the machine leaves them at
# their defaults.
COMPARED = ("subject", "start", "end", "time_zone", "all_day", "location", "body", "private",
            "recurrence", "exceptions", "deleted_occurrences")
EDITED = ("subject", "start", "location", "private")
SERIES_EDITED = ("subject", "location", "private")      # a series keeps its times

words = st.sampled_from(["Porada", "Oběd", "Call", "Review"])
locations = st.sampled_from(["", "Praha", "Brno", "Room 1"])
offsets = st.integers(min_value=-30, max_value=60)       # days from today
hours = st.integers(min_value=8, max_value=16)
lengths = st.sampled_from([1, 2])
shifts = st.sampled_from([-72, -24, -2, 2, 24, 72])      # hours a start is moved by
picks = st.integers(min_value=0, max_value=50)

Values = dict[str, Any]


def utc_text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def weekly(start: dt.datetime, count: int) -> RecurrenceRule:
    local = start.astimezone(PRAGUE)
    return RecurrenceRule(pattern="weekly", weekdays=(local.strftime("%A"),),
                          start=local.date(), count=count)


def rule_json(rule: RecurrenceRule) -> dict[str, Any]:
    assert rule.start is not None
    return {"pattern": {"type": "weekly", "interval": 1, "weekdays": list(rule.weekdays)},
            "range": {"start": rule.start.isoformat(), "end": None, "count": rule.count}}


def values_of(record: EventRecord) -> Values:
    return {"subject": record.subject, "start": record.start, "end": record.end,
            "location": record.location, "private": record.private,
            "exceptions": tuple((e.original_start, e.subject, e.start, e.end)
                                for e in record.exceptions)}


def window(today: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The window as PRODUCT.md §4.1 words it: today − 14 days … the end of today + 31."""
    return (dt.datetime.combine(today - dt.timedelta(days=DAYS_PAST), dt.time(), PRAGUE),
            dt.datetime.combine(today + dt.timedelta(days=DAYS_FUTURE + 1), dt.time(), PRAGUE))


def in_window(values: Values, rule: RecurrenceRule | None, today: dt.date) -> bool:
    start, end = window(today)
    if rule is not None:
        return recurrence.overlaps(rule, values["start"], values["end"] - values["start"],
                                   "Europe/Prague", start, end)
    return bool(values["start"] < end and values["end"] > start)


def event_xml(values: Values, rule: RecurrenceRule | None) -> str:
    parts = [f"<t:Subject>{values['subject']}</t:Subject>"]
    if values["private"]:
        parts.append("<t:Sensitivity>Private</t:Sensitivity>")
    parts.append(f"<t:Start>{utc_text(values['start'])}</t:Start>"
                 f"<t:End>{utc_text(values['end'])}</t:End>")
    if values["location"]:
        parts.append(f"<t:Location>{values['location']}</t:Location>")
    if rule is not None:
        assert rule.start is not None
        parts.append("<t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval>"
                     f"<t:DaysOfWeek>{rule.weekdays[0]}</t:DaysOfWeek></t:WeeklyRecurrence>"
                     f"<t:NumberedRecurrence><t:StartDate>{rule.start.isoformat()}"
                     f"</t:StartDate><t:NumberOfOccurrences>{rule.count}"
                     "</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence>")
    parts.append('<t:StartTimeZone Id="Central Europe Standard Time"/>'
                 '<t:EndTimeZone Id="Central Europe Standard Time"/>')
    return "<t:CalendarItem>" + "".join(parts) + "</t:CalendarItem>"


@dataclass
class Entity:
    """One event as a person thinks of it, whichever sides it exists on."""

    name: str
    rule: RecurrenceRule | None = None
    crm_pk: str | None = None
    ex_id: str | None = None
    crm: Values | None = None      # the CRM event's values; None: no event
    ex: Values | None = None       # the Exchange item's values; None: no item
    base: Values | None = None     # what both sides agreed at the last check
    linked: bool = False           # linked at the last check
    twin: bool = False             # entered on both sides by the user, not linked yet
    survivor: bool = False         # the survivor of an "unlink" deletion: out of sync
    # Since the last check:
    crm_touched: bool = False      # saved in the CRM (even without a change)
    ex_touched: bool = False
    crm_edited: set[str] = field(default_factory=set)
    ex_edited: set[str] = field(default_factory=set)
    crm_deleted: bool = False
    ex_deleted: bool = False
    history: dict[str, list[Any]] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)   # every key and ItemId it ever had

    def note_values(self, values: Values) -> None:
        for name, value in values.items():
            if value not in self.history.setdefault(name, []):
                self.history[name].append(value)

    def start_window(self) -> None:
        self.crm_touched = self.ex_touched = self.crm_deleted = self.ex_deleted = False
        self.crm_edited, self.ex_edited = set(), set()
        self.history = {}
        for values in (self.crm, self.ex, self.base):
            if values is not None:
                self.note_values(values)


@dataclass
class World:
    """Both sides as they are, read afresh."""

    events: dict[str, EventRecord]
    origins: dict[str, str]
    uids: dict[str, str]
    items: dict[str, EventRecord]
    links: list[Link]


class CalendarSyncMachine(RuleBasedStateMachine):
    sim: SimHandle                 # set by the test: ewsim's handle
    serial = itertools.count()     # organizations and users are new in every example
    deletion: str
    profile: SyncProfile

    def __init__(self) -> None:
        super().__init__()
        self.entities: list[Entity] = []
        self.dirty = False          # a run was killed since the last check
        self.today = START_DAY
        self.checked_day = START_DAY   # the `today` of the last check
        self.numbers = itertools.count(1)
        self._orphans: set[str] = set()

    @initialize(deletion=st.sampled_from(["propagate", "unlink"]))
    def start(self, deletion: str) -> None:
        # Every example starts from nothing: an empty mailbox and a new organization.
        self.deletion = deletion
        self.sim.reset()
        self.profile = self._make_profile()

    def _make_profile(self) -> SyncProfile:
        self.sim.control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
        n = next(self.serial)
        organization = Organization.objects.create(name=f"Org {n}")
        connection = MailboxConnection(organization=organization, name="ewsim",
                                       ews_url=self.sim.url, auth_type="basic",
                                       username=SERVICE)
        connection.set_secret(SERVICE_PASSWORD)
        connection.save()
        user = User.objects.create_user(f"cal{n}", "alice@example.com", "pw")
        crm_user = CrmUser.objects.create(organization=organization, name="Alice",
                                          login=f"cal{n}")
        profile = SyncProfile.objects.create(organization=organization, user=user,
                                             mailbox=self.sim.user, crm_user=crm_user,
                                             connection=connection)
        settings_ = profile.calendarsettings
        assert (settings_.days_past, settings_.days_future) == (DAYS_PAST, DAYS_FUTURE)
        settings_.deletion_policy = self.deletion
        settings_.save()
        return profile

    # --- helpers ----------------------------------------------------------------------------
    def _new_values(self, word: str, offset: int, hour: int, length: int, location: str,
                    private: bool, number: int) -> Values:
        start = dt.datetime.combine(self.today + dt.timedelta(days=offset), dt.time(hour),
                                    PRAGUE).astimezone(dt.UTC)
        return {"subject": f"{word} {number}", "start": start,
                "end": start + dt.timedelta(hours=length), "location": location,
                "private": private, "exceptions": ()}

    def _pick(self, candidates: list[Entity], index: int) -> Entity:
        return candidates[index % len(candidates)]

    def _with_crm(self) -> list[Entity]:
        return [e for e in self.entities if e.crm is not None and not e.twin]

    def _with_ex(self) -> list[Entity]:
        return [e for e in self.entities if e.ex is not None and not e.twin]

    def _crm_series(self) -> list[Entity]:
        return [e for e in self._with_crm() if e.rule is not None]

    def _add(self, entity: Entity, crm: bool, ex: bool) -> None:
        entity.start_window()
        entity.crm_touched, entity.ex_touched = crm, ex
        self.entities.append(entity)

    def _create_crm(self, values: Values, rule: RecurrenceRule | None) -> str:
        event_ = Event.objects.create(
            organization_id=self.profile.organization_id, owner=self.profile.crm_user,
            subject=values["subject"], start=values["start"], end=values["end"],
            time_zone="Europe/Prague", location=values["location"],
            private=values["private"], recurrence=rule_json(rule) if rule else None)
        return str(event_.pk)

    def _create_ex(self, values: Values, rule: RecurrenceRule | None) -> str:
        created = self.sim.control.create_item(self.sim.user, folder="calendar",
                                               xml=event_xml(values, rule), tag="CalendarItem")
        return str(created["id"])

    # --- rules: the CRM ---------------------------------------------------------------------
    @rule(word=words, offset=offsets, hour=hours, length=lengths, location=locations,
          private=st.booleans(), count=st.one_of(st.none(), st.none(), st.integers(2, 5)))
    def create_event(self, word: str, offset: int, hour: int, length: int, location: str,
                     private: bool, count: int | None) -> None:
        n = next(self.numbers)
        values = self._new_values(word, offset, hour, length, location, private, n)
        rule_ = weekly(values["start"], count) if count else None
        pk = self._create_crm(values, rule_)
        self._add(Entity(f"E{n}", rule=rule_, crm_pk=pk, crm=values, ids={pk}),
                  crm=True, ex=False)

    @precondition(lambda self: self._with_crm())
    @rule(index=picks, data=st.data())
    def edit_event(self, index: int, data: st.DataObject) -> None:
        entity = self._pick(self._with_crm(), index)
        assert entity.crm is not None and entity.crm_pk is not None
        name = data.draw(st.sampled_from(SERIES_EDITED if entity.rule else EDITED),
                         label="field")
        event_ = Event.objects.filter(pk=int(entity.crm_pk)).first()
        if event_ is None:
            # A killed run carried a deletion from Exchange over ("propagate"): the user can
            # no longer edit it, and the check allows "gone" after a kill.
            assert self.dirty, f"{entity.name}'s CRM event vanished without a killed run"
            return
        changes = self._draw_change(entity, entity.crm, name, data)
        for key, value in changes.items():
            setattr(event_, key, value)
        event_.save()
        self._edited(entity, "crm", changes)

    @precondition(lambda self: self._crm_series())
    @rule(index=picks, nth=st.integers(min_value=0, max_value=4),
          hours_later=st.sampled_from([1, 2, 3]))
    def add_exception(self, index: int, nth: int, hours_later: int) -> None:
        """A changed occurrence, as the CRM keeps it: a child Event with `original_start`."""
        entity = self._pick(self._crm_series(), index)
        assert entity.crm is not None and entity.crm_pk is not None and entity.rule
        starts = [s for _, s in recurrence.occurrences(entity.rule, entity.crm["start"],
                                                       "Europe/Prague")]
        taken = {e[0] for e in entity.crm["exceptions"]}
        free = [s for s in starts if s not in taken]
        if not free:
            return
        original = free[nth % len(free)]
        start = original + dt.timedelta(hours=hours_later)
        length = entity.crm["end"] - entity.crm["start"]
        subject = f"{entity.crm['subject']} (moved)"
        master = Event.objects.filter(pk=int(entity.crm_pk)).first()
        if master is None:   # deleted by a killed run, as in edit_event
            assert self.dirty, f"{entity.name}'s CRM event vanished without a killed run"
            return
        Event.objects.create(organization_id=self.profile.organization_id,
                             owner=self.profile.crm_user, recurrence_master=master,
                             original_start=original, subject=subject, start=start,
                             end=start + length, time_zone="Europe/Prague",
                             location=master.location, private=master.private)
        exceptions = tuple(sorted((*entity.crm["exceptions"],
                                   (original, subject, start, start + length))))
        self._edited(entity, "crm", {"exceptions": exceptions})

    @precondition(lambda self: self._with_crm())
    @rule(index=picks)
    def delete_event(self, index: int) -> None:
        entity = self._pick(self._with_crm(), index)
        assert entity.crm_pk is not None
        Event.objects.filter(pk=int(entity.crm_pk)).delete()
        entity.crm = None
        entity.crm_deleted = True

    # --- rules: Exchange, as Outlook would ---------------------------------------------------
    @rule(word=words, offset=offsets, hour=hours, length=lengths, location=locations,
          private=st.booleans(), count=st.one_of(st.none(), st.none(), st.integers(2, 5)))
    def create_item(self, word: str, offset: int, hour: int, length: int, location: str,
                    private: bool, count: int | None) -> None:
        n = next(self.numbers)
        values = self._new_values(word, offset, hour, length, location, private, n)
        rule_ = weekly(values["start"], count) if count else None
        item_id = self._create_ex(values, rule_)
        self._add(Entity(f"E{n}", rule=rule_, ex_id=item_id, ex=values, ids={item_id}),
                  crm=False, ex=True)

    @precondition(lambda self: self._with_ex())
    @rule(index=picks, data=st.data())
    def edit_item(self, index: int, data: st.DataObject) -> None:
        entity = self._pick(self._with_ex(), index)
        assert entity.ex is not None and entity.ex_id is not None
        name = data.draw(st.sampled_from(SERIES_EDITED if entity.rule else EDITED),
                         label="field")
        changes = self._draw_change(entity, entity.ex, name, data)
        fields: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "subject":
                fields["Subject"] = value
            elif key == "location":
                fields["Location"] = value or None
            elif key == "private":
                fields["Sensitivity"] = "Private" if value else "Normal"
            else:
                fields[key.capitalize()] = utc_text(value)
        self.sim.control.update_item(entity.ex_id, **fields)
        self._edited(entity, "ex", changes)

    @precondition(lambda self: self._with_ex())
    @rule(index=picks)
    def delete_item(self, index: int) -> None:
        entity = self._pick(self._with_ex(), index)
        assert entity.ex_id is not None
        self.sim.control.delete_item(entity.ex_id)
        entity.ex = None
        entity.ex_deleted = True

    # --- rules: the same event entered on both sides ----------------------------------------
    @rule(word=words, offset=offsets, hour=hours, length=lengths, location=locations,
          private=st.booleans())
    def create_twins(self, word: str, offset: int, hour: int, length: int, location: str,
                     private: bool) -> None:
        """The user enters one meeting in the CRM and in Outlook (no common UID): matched
        by subject and start once both are in the window, never doubled."""
        n = next(self.numbers)
        values = self._new_values(word, offset, hour, length, location, private, n)
        pk, item_id = self._create_crm(values, None), self._create_ex(values, None)
        self._add(Entity(f"E{n}", crm_pk=pk, ex_id=item_id, crm=dict(values),
                         ex=dict(values), twin=True, ids={pk, item_id}), crm=True, ex=True)

    def _draw_change(self, entity: Entity, now: Values, name: str,
                     data: st.DataObject) -> Values:
        if name == "subject":
            word = data.draw(words, label="word")
            return {"subject": f"{word} {entity.name[1:]}"}
        if name == "location":
            return {"location": data.draw(locations, label="location")}
        if name == "private":
            return {"private": data.draw(st.booleans(), label="private")}
        shift = dt.timedelta(hours=data.draw(shifts, label="shift"))
        return {"start": now["start"] + shift, "end": now["end"] + shift}

    def _edited(self, entity: Entity, side: str, changes: Values) -> None:
        values = entity.crm if side == "crm" else entity.ex
        assert values is not None
        values.update(changes)
        if side == "crm":
            entity.crm_touched = True
            entity.crm_edited |= set(changes)
        else:
            entity.ex_touched = True
            entity.ex_edited |= set(changes)
        entity.note_values(changes)

    # --- rules: time and runs ---------------------------------------------------------------
    @rule(days=st.integers(min_value=1, max_value=20))
    def move_clock(self, days: int) -> None:
        self.today += dt.timedelta(days=days)

    @rule()
    def sync(self) -> None:
        self._settle(run_calendar(self.sim, self.profile, today=self.today))

    @rule(nth=st.integers(min_value=1, max_value=10))
    def sync_killed(self, nth: int) -> None:
        calls = itertools.count(1)

        def kill(label: str) -> None:
            if next(calls) == nth:
                event(f"killed at {label}")
                raise Killed(label)

        try:
            run = run_calendar(self.sim, self.profile, today=self.today, checkpoint=kill)
        except Killed:
            # The worker died: its lease expires as a dead worker's would.
            Lease.objects.filter(profile=self.profile).update(
                expires_at=timezone.now() - dt.timedelta(seconds=1))
            self.dirty = True
            return
        self._settle(run)   # it finished before the n-th checkpoint

    @invariant()
    def model_is_consistent(self) -> None:
        keys = [e.crm_pk for e in self.entities if e.crm_pk]
        assert len(set(keys)) == len(keys)

    # --- the check --------------------------------------------------------------------------
    def _settle(self, run: Run) -> None:
        assert run.status == Run.Status.SUCCESS, (run.status, run.message, self._items(run))
        again = run_calendar(self.sim, self.profile, today=self.today)
        assert again.status == Run.Status.SUCCESS, (again.status, again.message)
        leftovers = self._items(again)
        assert not leftovers, f"the run after a completed run still had work: {leftovers}"
        assert run.errors == 0, self._items(run)
        assert not Retry.objects.filter(profile=self.profile).exists(), "writes left to retry"
        self._check(self._world())
        self.dirty = False
        self.checked_day = self.today
        for entity in self.entities:
            entity.start_window()

    @staticmethod
    def _items(run: Run) -> list[tuple[str, str, str]]:
        return list(run.items.values_list("action", "title", "detail"))

    def _world(self) -> World:
        organization = self.profile.organization_id
        rows = list(Event.objects.filter(organization_id=organization,
                                         recurrence_master__isnull=True)
                    .values_list("pk", "origin_item_id", "uid"))
        fetched = crm_for(self.profile, "calendar").fetch(Kind.CALENDAR,
                                                          [str(pk) for pk, _, _ in rows])
        return World(
            events={key: r.record for key, r in fetched.items()
                    if isinstance(r.record, EventRecord)},
            origins={str(pk): origin for pk, origin, _ in rows if origin},
            uids={str(pk): uid for pk, _, uid in rows if uid},
            items=exchange_events(self.sim),
            links=list(Link.objects.filter(profile=self.profile)))

    def _check(self, world: World) -> None:
        stamps = Counter(r.stamp for r in world.items.values() if r.stamp)
        assert all(n == 1 for n in stamps.values()), f"duplicated stamps: {stamps}"
        origins = Counter(world.origins.values())
        assert all(n == 1 for n in origins.values()), f"duplicated origins: {origins}"
        uids = Counter(world.uids.values())
        assert all(n == 1 for n in uids.values()), f"one UID, several CRM events: {uids}"
        assert all(link.state in (Link.State.ACTIVE, Link.State.UNLINKED)
                   for link in world.links), "a deletion is still waiting"
        active = [link for link in world.links if link.state == Link.State.ACTIVE]
        link_of_crm = {link.crm_key: link.remote_id for link in active}
        assert len(link_of_crm) == len({link.remote_id for link in active}), \
            "one record in two links"

        # Which model event each record belongs to: its own ids, then the ids the engine
        # left on the copies it made (the origin on a CRM event, the stamp on an item).
        stamp_key = BuiltinCrm(self.profile.organization_id).key_from_stamp
        owner: dict[str, Entity] = {}
        for entity in self.entities:
            for key in entity.ids:
                owner[key] = entity
        for pk, origin in world.origins.items():
            if pk not in owner and origin in owner:
                owner[pk] = owner[origin]
        for item_id, record in world.items.items():
            key = stamp_key(Kind.CALENDAR, record.stamp)
            if item_id not in owner and key in owner:
                owner[item_id] = owner[key]
        for link in world.links:
            if link.crm_key not in owner and link.remote_id in owner:
                owner[link.crm_key] = owner[link.remote_id]
            if link.remote_id not in owner and link.crm_key in owner:
                owner[link.remote_id] = owner[link.crm_key]
        for pk, record in world.events.items():
            assert pk in owner, f"a CRM event nobody made: {pk} {values_of(record)}"
        for item_id, record in world.items.items():
            assert item_id in owner, f"an Exchange item nobody made: {values_of(record)}"
        for link in active:
            assert owner[link.crm_key] is owner[link.remote_id], \
                (f"{owner[link.crm_key].name} linked to {owner[link.remote_id].name}: two "
                 "events became one")

        # Items stamped with a CRM event that no longer exists: copies the engine made before
        # a crash and the CRM event was deleted; they are left alone, never imported back.
        self._orphans = {item_id for item_id, record in world.items.items()
                         if (key := stamp_key(Kind.CALENDAR, record.stamp))
                         and key not in world.events}
        survivors: list[Entity] = []
        for entity in self.entities:
            pks = [k for k in world.events if owner.get(k) is entity]
            items = [i for i in world.items if owner.get(i) is entity]
            assert len(pks) <= 1 and len(items) <= 1, \
                f"{entity.name} is duplicated: CRM events {pks}, Exchange items {items}"
            pk, item = (pks or [None])[0], (items or [None])[0]
            self._check_entity(entity, pk, item, world, link_of_crm)
            # Adopt what happened as the start of the next window.
            is_linked = bool(pk and item and link_of_crm.get(pk) == item)
            unlinked_for_good = any(link.state == Link.State.UNLINKED
                                    and (link.crm_key == pk or link.remote_id == item)
                                    for link in world.links)
            entity.ids |= {k for k in (pk, item) if k}
            entity.crm_pk, entity.ex_id = pk, item
            entity.crm = values_of(world.events[pk]) if pk else None
            entity.ex = values_of(world.items[item]) if item else None
            entity.twin = entity.twin and not is_linked and bool(pk and item)
            entity.linked = is_linked
            entity.survivor = (entity.survivor or unlinked_for_good) and not is_linked
            entity.base = dict(entity.crm) if entity.crm and is_linked else None
            if pk or item:
                survivors.append(entity)
        self.entities = survivors

    def _in(self, entity: Entity, values: Values | None) -> bool:
        return values is not None and in_window(values, entity.rule, self.today)

    def _check_entity(self, entity: Entity, pk: str | None, item: str | None, world: World,
                      link_of_crm: dict[str, str]) -> None:
        name = entity.name
        is_linked = bool(pk and item and link_of_crm.get(pk) == item)
        outcome = ("linked" if is_linked else "apart" if pk and item else "crm" if pk
                   else "ex" if item else "gone")
        allowed = self._outcomes(entity)
        event(f"outcome: {outcome}{' after a kill' if self.dirty else ''}")
        assert outcome in allowed, (f"{name} ended {outcome}, expected {allowed} (today "
                                    f"{self.today}, last check {self.checked_day}): {entity}")
        if is_linked:
            assert pk is not None and item is not None
            crm_now = {k: v for k, v in canonical(world.events[pk]).items() if k in COMPARED}
            ex_now = {k: v for k, v in canonical(world.items[item]).items() if k in COMPARED}
            assert crm_now == ex_now, f"{name}: the linked sides differ:\n{crm_now}\n{ex_now}"
            self._check_values(entity, values_of(world.events[pk]))
        elif not self.dirty:
            # Not linked: the engine touched neither side.
            if pk is not None and entity.crm is not None:
                assert values_of(world.events[pk]) == entity.crm, \
                    f"{name}: an unlinked CRM event changed: {entity}"
            if item is not None and entity.ex is not None:
                assert values_of(world.items[item]) == entity.ex, \
                    f"{name}: an unlinked Exchange item changed: {entity}"

    def _outcomes(self, entity: Entity) -> set[str]:
        """How a completed run may leave this event: linked, on both sides apart, on one
        side only, or gone."""
        crm_alive, ex_alive = entity.crm is not None, entity.ex is not None
        unlink = self.deletion == "unlink"
        new_day = self.today != self.checked_day
        if entity.linked:
            assert entity.base is not None
            base_in = self._in(entity, entity.base)
            if crm_alive and ex_alive:
                # A change seen outside the window unlinks without writing anything.
                left = ((entity.crm_touched and not self._in(entity, entity.crm))
                        or (entity.ex_touched and not self._in(entity, entity.ex)))
                if self.dirty:
                    return {"linked", "apart"}
                return {"apart"} if left else {"linked"}
            if not crm_alive and not ex_alive:
                return {"gone"}
            survivor = "crm" if crm_alive else "ex"
            alive = entity.crm if crm_alive else entity.ex
            if unlink or not base_in:
                # "unlink", or the pair had left the window: the survivor is left alone.
                allowed = {survivor}
            else:
                changed = alive != entity.base
                allowed = {"linked"} if changed else {"gone"}
            if self.dirty:
                allowed |= {"gone", "linked", survivor}
            return allowed
        if not crm_alive and not ex_alive:
            # Deleted before any run linked it; a killed run may have copied it first.
            return {"gone", "crm", "ex", "linked"} if self.dirty else {"gone"}
        if crm_alive and ex_alive:
            if entity.twin:
                inside = self._in(entity, entity.crm)
                allowed = {"linked"} if inside else {"apart"}
            else:
                # Unlinked by leaving the scope: matched again or not, by its stamp/origin.
                allowed = {"apart", "linked"}
            if self.dirty:
                allowed |= {"linked", "apart"}
            return allowed
        alone = "crm" if crm_alive else "ex"
        values = entity.crm if crm_alive else entity.ex
        touched = entity.crm_touched if crm_alive else entity.ex_touched
        key = entity.crm_pk if crm_alive else entity.ex_id
        if entity.survivor or key in self._unlinked_for_good() or key in self._orphans:
            allowed = {alone}
        elif self._in(entity, values):
            # In the window: copied if seen — changed, or read with the window that moved —
            # crash or not (a killed run leaves what the next one needs to finish).
            allowed = {"linked"} if touched or new_day else {alone, "linked"}
        elif self.dirty:
            # A killed run may have copied and linked it while it was in the window; a
            # change seen once it is outside unlinks that pair, touching nothing.
            allowed = {alone, "linked", "apart"} if touched else {alone, "linked"}
        else:
            allowed = {alone}
        return allowed

    def _unlinked_for_good(self) -> set[str]:
        """Both keys of every link an "unlink" deletion ended (perhaps in a killed run)."""
        rows = Link.objects.filter(profile=self.profile, state=Link.State.UNLINKED)
        return {k for pair in rows.values_list("crm_key", "remote_id") for k in pair}

    def _check_values(self, entity: Entity, now: Values) -> None:
        for name in ("subject", "start", "end", "location", "private", "exceptions"):
            sides = [s for s in (entity.crm, entity.ex) if s is not None]
            options = [s[name] for s in sides]
            if self.dirty or not entity.linked or entity.base is None:
                options += entity.history.get(name, [])
            else:
                base = entity.base[name]
                crm_changed = entity.crm is not None and entity.crm[name] != base
                ex_changed = entity.ex is not None and entity.ex[name] != base
                if crm_changed != ex_changed:
                    options = [(entity.crm if crm_changed else entity.ex)[name]]  # type: ignore[index]
                elif not crm_changed:
                    options = [base]
            if not entity.linked and (entity.crm is None) != (entity.ex is None) \
                    and not self.dirty:
                # New on one side: copied as it is now.
                alone = entity.crm if entity.crm is not None else entity.ex
                assert alone is not None
                options = [alone[name]]
            assert now[name] in options, (f"{entity.name}.{name} is {now[name]!r}, expected "
                                          f"one of {options}: {entity}")


# Derandomized: CI runs the same examples every time (a failure is reproducible, not luck);
# set HYPOTHESIS_RANDOM=1 to explore new ones locally.
MACHINE_SETTINGS = settings(
    max_examples=EXAMPLES, stateful_step_count=20, deadline=None,
    derandomize=not os.environ.get("HYPOTHESIS_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much])


def test_calendar_converges_whatever_the_edits_clock_and_crashes(ewsim: SimHandle) -> None:
    machine = type("CalendarSyncMachine", (CalendarSyncMachine,), {"sim": ewsim})
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)

