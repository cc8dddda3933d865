"""Events of the built-in CRM as records: series with their exceptions, categories, persons.

A series is one record: the master Event with its `recurrence`, its exceptions (child Events
with `original_start`) and its deleted occurrences. Exceptions are never records of their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from crm.models import Event, EventCategory, Person
from engine.crmstore.base import CrmWrite
from engine.records import EventRecord, RecurrenceRule, exception_view

EVENT_FIELDS = ("subject", "start", "end", "time_zone", "all_day", "location", "body",
                "private")


@dataclass(frozen=True)
class EventOptions:
    """How the profile wants events written into the CRM."""

    owner_id: int
    imported_status_id: int | None = None
    link_attendees: bool = True
    link_attendee_companies: bool = False


def rule_to_json(rule: RecurrenceRule | None) -> dict[str, Any] | None:
    if rule is None:
        return None
    return {
        "pattern": {"type": rule.pattern, "interval": rule.interval,
                    "weekdays": list(rule.weekdays), "day_of_month": rule.day_of_month,
                    "month": rule.month, "week_index": rule.week_index,
                    "first_day_of_week": rule.first_day_of_week},
        "range": {"start": rule.start.isoformat() if rule.start else None,
                  "end": rule.end.isoformat() if rule.end else None, "count": rule.count},
    }


def rule_from_json(data: dict[str, Any] | None) -> RecurrenceRule | None:
    if not data or not data.get("pattern"):
        return None
    pattern, span = data["pattern"], data.get("range") or {}

    def day(value: str | None) -> dt.date | None:
        return dt.date.fromisoformat(value) if value else None

    return RecurrenceRule(
        pattern=pattern.get("type", "weekly"), interval=int(pattern.get("interval") or 1),
        weekdays=tuple(pattern.get("weekdays") or ()), day_of_month=pattern.get("day_of_month"),
        month=pattern.get("month"), week_index=pattern.get("week_index"),
        first_day_of_week=pattern.get("first_day_of_week") or "Monday",
        start=day(span.get("start")), end=day(span.get("end")), count=span.get("count"))


def _deleted(values: list[str]) -> tuple[dt.datetime, ...]:
    return tuple(sorted(dt.datetime.fromisoformat(v).astimezone(dt.UTC) for v in values))


def event_record(event: Event, exceptions: Sequence[Event] = ()) -> EventRecord:
    return EventRecord(
        subject=event.subject, start=event.start.astimezone(dt.UTC),
        end=event.end.astimezone(dt.UTC), time_zone=event.time_zone, all_day=event.all_day,
        location=event.location, body=event.body, private=event.private,
        categories=(event.category.name,) if event.category_id else (),
        uid=event.uid, recurrence=rule_from_json(event.recurrence),
        exceptions=sorted((_exception_record(e) for e in exceptions),
                          key=lambda r: r.original_start or r.start or dt.datetime.min),
        deleted_occurrences=_deleted(event.deleted_occurrences or []),
        original_start=event.original_start.astimezone(dt.UTC) if event.original_start else None,
        kind="master" if event.recurrence else "single")


def _exception_record(event: Event) -> EventRecord:
    return exception_view(event_record(event))


def fetch_events(organization_id: int, keys: Sequence[str]) -> dict[str, tuple[Event, EventRecord]]:
    ids = [int(k) for k in keys if k.isdigit()]
    events = {e.pk: e for e in Event.objects.filter(organization_id=organization_id, pk__in=ids,
                                                    recurrence_master__isnull=True)
              .select_related("category")}
    children: dict[int, list[Event]] = {}
    for child in Event.objects.filter(recurrence_master_id__in=list(events)).select_related(
            "category"):
        children.setdefault(child.recurrence_master_id, []).append(child)
    return {str(pk): (e, event_record(e, children.get(pk, []))) for pk, e in events.items()}


def _category(organization_id: int, record: EventRecord) -> EventCategory | None:
    if not record.categories:
        return None
    return EventCategory.objects.filter(organization_id=organization_id,
                                        name__iexact=record.categories[0]).first()


def _apply(event: Event, record: EventRecord, fields: frozenset[str]) -> None:
    for name in EVENT_FIELDS:
        if name in fields:
            value = getattr(record, name)
            if name in ("subject", "location") and isinstance(value, str):
                value = value[:255]
            setattr(event, name, value if value is not None else "")
    if "recurrence" in fields:
        event.recurrence = rule_to_json(record.recurrence)
    if "deleted_occurrences" in fields:
        event.deleted_occurrences = [d.isoformat() for d in record.deleted_occurrences]
    if "categories" in fields:
        event.category = _category(event.organization_id, record)


def _link_attendees(event: Event, record: EventRecord, options: EventOptions) -> None:
    if not options.link_attendees:
        return
    addresses = [a.email.lower() for a in record.attendees if a.email]
    persons: list[Person] = []
    for start in range(0, len(addresses), 500):   # bounded query parameters
        persons += Person.objects.filter(organization_id=event.organization_id) \
            .with_any_email(addresses[start:start + 500])
    event.persons.set(persons)
    if options.link_attendee_companies:
        companies = {c.pk for p in persons for c in p.companies.all()}
        event.companies.set(companies)


def _write_exceptions(master: Event, record: EventRecord) -> None:
    master.exceptions.all().delete()
    for exception in record.exceptions:
        child = Event(organization_id=master.organization_id, owner_id=master.owner_id,
                      recurrence_master=master, original_start=exception.original_start,
                      category=master.category, status=master.status)
        _apply(child, exception, frozenset(EVENT_FIELDS))
        child.start = child.start or exception.original_start
        child.end = child.end or child.start
        child.save()


def create_event(organization_id: int, record: EventRecord, origin: str,
                 options: EventOptions) -> Event:
    with transaction.atomic():
        event = Event(organization_id=organization_id, owner_id=options.owner_id,
                      origin_item_id=origin, uid=record.uid[:512],
                      status_id=options.imported_status_id)
        _apply(event, record, frozenset({*EVENT_FIELDS, "recurrence", "deleted_occurrences",
                                         "categories"}))
        event.save()
        _link_attendees(event, record, options)
        if record.exceptions:
            _write_exceptions(event, record)
        event.refresh_from_db(fields=["revision"])
    return event


def update_event(organization_id: int, key: str, record: EventRecord, fields: frozenset[str],
                 options: EventOptions) -> Event | None:
    with transaction.atomic():
        event = Event.objects.select_for_update().filter(
            organization_id=organization_id, pk=int(key)).first()
        if event is None:
            return None
        _apply(event, record, fields)
        if "uid" in fields and record.uid and not event.uid:
            event.uid = record.uid[:512]
        event.save()
        if "attendees" in fields:
            _link_attendees(event, record, options)
        if "exceptions" in fields or "recurrence" in fields:
            _write_exceptions(event, record)
        event.refresh_from_db(fields=["revision"])
    return event


def leave_event(organization_id: int, key: str, address: str, owner_id: int,
                successor_id: int | None) -> CrmWrite:
    """A synced user leaves a meeting others still attend: the persons with their address
    are taken off the event; if the event is theirs, it passes to `successor_id` (else their
    runs would take "their" event for one to copy into their calendar again)."""
    with transaction.atomic():
        event = Event.objects.select_for_update().filter(
            organization_id=organization_id, pk=int(key) if key.isdigit() else None).first()
        if event is None:
            return CrmWrite(key)
        leaving = list(event.persons.filter(organization_id=organization_id)
                       .with_any_email([address]))
        if leaving:
            event.persons.remove(*leaving)
        if event.owner_id == owner_id and successor_id is not None:
            event.owner_id = successor_id
            event.save(update_fields=["owner"])
        event.refresh_from_db(fields=["revision"])
    return CrmWrite(key, str(event.revision))


def create_events(organization_id: int, items: Sequence[tuple[EventRecord, str]],
                  options: EventOptions) -> list[Event]:
    """New events as create_event() makes them, but a few statements for the lot instead of
    a dozen per event (a first import of 2,000 meetings spent half its time in them;
    bench/calendar.py). Tracked bulk_create takes one revision for the batch; the bulk rows
    below it (exceptions, attendee links) send no signals, so they do not bump the new events
    to a second revision: those were recorded a moment ago in this same transaction. Should a
    meeting UID be taken meanwhile, the batch falls back to create_event() one by one."""
    categories: dict[str, EventCategory] = {}
    for category in EventCategory.objects.filter(organization_id=organization_id):
        categories.setdefault(category.name.lower(), category)   # as _category()'s first()
    fields = frozenset({*EVENT_FIELDS, "recurrence", "deleted_occurrences"})
    events: list[Event] = []
    for record, origin in items:
        event = Event(organization_id=organization_id, owner_id=options.owner_id,
                      origin_item_id=origin, uid=record.uid[:512],
                      status_id=options.imported_status_id)
        _apply(event, record, fields)
        event.category = categories.get(record.categories[0].lower()) \
            if record.categories else None
        events.append(event)
    try:
        with transaction.atomic():
            created = Event.objects.bulk_create(events)
            children: list[Event] = []
            for master, (record, _) in zip(created, items, strict=True):
                for exception in record.exceptions:
                    child = Event(organization_id=organization_id, owner_id=master.owner_id,
                                  recurrence_master_id=master.pk,
                                  original_start=exception.original_start,
                                  category=master.category, status_id=master.status_id)
                    _apply(child, exception, frozenset(EVENT_FIELDS))
                    child.start = child.start or exception.original_start
                    child.end = child.end or child.start
                    children.append(child)
            Event.objects.bulk_create(children)
            _link_attendees_many(created, [record for record, _ in items], options)
    except IntegrityError:
        return [create_event(organization_id, record, origin, options)
                for record, origin in items]
    return created


def update_events(organization_id: int, items: Sequence[tuple[str, EventRecord, frozenset[str]]],
                  options: EventOptions) -> list[Event | None]:
    """update_event() of many events: one locking read, one tracked bulk update (one revision
    for the batch), attendee links replaced in bulk (a first two-way sync fills fields of
    hundreds of linked meetings; bench/calendar.py). An event named twice, or whose series
    changes, goes through update_event(); a gone one is None."""
    results: list[Event | None] = []
    with transaction.atomic():
        ids = [int(key) for key, _, _ in items if key.isdigit()]
        events = {str(e.pk): e for e in Event.objects.select_for_update().filter(
            organization_id=organization_id, pk__in=ids)}
        bulk: dict[str, Event] = {}
        columns: set[str] = set()
        attendees: list[tuple[Event, EventRecord]] = []
        for key, record, fields in items:
            event = events.get(key)
            if event is None or key in bulk or fields & {"exceptions", "recurrence"}:
                continue   # gone, or done one by one below
            _apply(event, record, fields)
            columns.update(_columns(fields))
            if "uid" in fields and record.uid and not event.uid:
                event.uid = record.uid[:512]
                columns.add("uid")
            if "attendees" in fields:
                attendees.append((event, record))
            bulk[key] = event
        # Unchanged columns are written back as read: the rows are locked meanwhile.
        Event.objects.bulk_update(list(bulk.values()), sorted(columns))
        if options.link_attendees and attendees:
            linked = [event.pk for event, _ in attendees]
            Event.persons.through.objects.filter(event_id__in=linked).delete()
            if options.link_attendee_companies:
                Event.companies.through.objects.filter(event_id__in=linked).delete()
            _link_attendees_many([e for e, _ in attendees], [r for _, r in attendees], options)
        # The versions handed back are the revisions as stored now, whatever bumped them.
        revisions = dict(Event.objects.filter(pk__in=[e.pk for e in bulk.values()])
                         .values_list("pk", "revision"))
        for event in bulk.values():
            event.revision = revisions[event.pk]
        for key, record, fields in items:
            event = bulk.pop(key, None)
            if event is not None:
                results.append(event)
            elif key in events:
                results.append(update_event(organization_id, key, record, fields, options))
            else:
                results.append(None)
    return results


def _columns(fields: frozenset[str]) -> set[str]:
    """The Event columns _apply() writes for these synced fields."""
    columns = {name for name in EVENT_FIELDS if name in fields}
    columns |= {name for name in ("recurrence", "deleted_occurrences") if name in fields}
    if "categories" in fields:
        columns.add("category")
    return columns


def _link_attendees_many(events: Sequence[Event], records: Sequence[EventRecord],
                         options: EventOptions) -> None:
    """_link_attendees() for events without attendee links yet: one lookup of every address
    (per 500), bulk links."""
    if not options.link_attendees or not events:
        return
    wanted = [{a.email.lower() for a in r.attendees if a.email} for r in records]
    addresses = sorted(set().union(*wanted))
    by_address: dict[str, set[int]] = {}
    for start in range(0, len(addresses), 500):   # bounded query parameters
        for pk, *emails in Person.objects.filter(organization_id=events[0].organization_id) \
                .with_any_email(addresses[start:start + 500]) \
                .values_list("pk", "email1", "email2", "email3"):
            for email in emails:
                if email:
                    by_address.setdefault(email.lower(), set()).add(pk)
    persons = [(event, sorted({pk for a in found for pk in by_address.get(a, ())}))
               for event, found in zip(events, wanted, strict=True)]
    Event.persons.through.objects.bulk_create(
        [Event.persons.through(event_id=event.pk, person_id=pk)
         for event, pks in persons for pk in pks])
    if options.link_attendee_companies:
        companies: dict[int, set[int]] = {}
        for person_id, company_id in Person.companies.through.objects.filter(
                person_id__in={pk for _, pks in persons for pk in pks}) \
                .values_list("person_id", "company_id"):
            companies.setdefault(person_id, set()).add(company_id)
        Event.companies.through.objects.bulk_create(
            [Event.companies.through(event_id=event.pk, company_id=company_id)
             for event, pks in persons
             for company_id in sorted({c for pk in pks for c in companies.get(pk, ())})])
