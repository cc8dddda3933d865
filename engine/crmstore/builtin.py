"""The CRM backend over the built-in store (the `crm` app)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import OuterRef, Q, Subquery

from crm.models import (
    ClassificationNode,
    Company,
    Event,
    Person,
    PersonCompany,
    company_name_key,
)
from crm.tracking import Change, changes_since
from engine.crmstore.base import (
    ChangeWatch,
    CrmBackend,
    CrmChange,
    CrmRecord,
    CrmUpdate,
    CrmWrite,
    RecordSummary,
)
from engine.crmstore.builtin_events import (
    EventOptions,
    create_event,
    create_events,
    fetch_events,
    leave_event,
    update_event,
    update_events,
)
from engine.crmstore.builtin_kind import BuiltinKind
from engine.crmstore.builtin_mail import BuiltinMail
from engine.crmstore.builtin_persons import (
    all_fields,
    apply_record,
    company_ids,
    image_type,
    person_columns,
    person_record,
    photo_token,
    set_first_company,
)
from engine.crmstore.builtin_reports import field_labels, record_url, summaries
from engine.crmstore.builtin_watch import BuiltinWatch
from engine.matching import full_name, name_key
from engine.records import ContactRecord, EventRecord, Kind, Record

CHANGE_KIND = {Kind.CONTACTS: Change.Kind.PERSON, Kind.CALENDAR: Change.Kind.EVENT}


@dataclass(frozen=True)
class PersonOptions:
    """How the profile sees persons: the CRM user the persons it creates belong to, and
    whether only that user's persons (owned or assigned) are synced."""

    owner_id: int | None = None
    own_only: bool = False


class BuiltinCrm(BuiltinKind, BuiltinMail, CrmBackend):
    """Persons in scope: those of the classification branch if one is given; else, with
    `PersonOptions.own_only`, the profile's CRM user's; else every person of the
    organization."""

    def __init__(self, organization_id: int, classification_node_id: int | None = None,
                 event_options: EventOptions | None = None,
                 person_options: PersonOptions | None = None) -> None:
        self.organization_id = organization_id
        self.classification_node_id = classification_node_id
        self.event_options = event_options
        self.person_options = person_options or PersonOptions()

    @property
    def _events(self) -> EventOptions:
        if self.event_options is None:
            raise ValueError("calendar access needs the profile's event options")
        return self.event_options

    @classmethod
    def change_watch(cls, events_named: int) -> ChangeWatch | None:
        return BuiltinWatch(events_named)

    def shared_transaction(self) -> contextlib.AbstractContextManager[object]:
        return transaction.atomic()

    # reading
    def current_cursor(self) -> str:
        from crm.tracking import RevisionCounter

        counter = RevisionCounter.objects.filter(organization_id=self.organization_id).first()
        # Revision 0 (nothing written yet) is "", as a folder never read has it.
        return str(counter.value) if counter and counter.value else ""

    def changes_since(self, kind: Kind, cursor: str) -> Iterator[CrmChange]:
        rows = changes_since(self.organization_id, CHANGE_KIND[kind], _revision(cursor))
        for object_id, deleted, rev in rows.values_list("object_id", "deleted", "revision")\
                .iterator(chunk_size=1000):
            yield CrmChange(str(object_id), deleted, str(rev))

    def cursor_past_own_writes(self, kind: Kind, cursor: str, own_versions: set[str]) -> str:
        own = {int(v) for v in own_versions if v.isdigit()}
        if not own:
            return cursor
        # Revisions are taken in commit order (crm.tracking.allocate_revision): every write
        # up to the counter read here has committed, so the journal rows up to it are all
        # there is. A row names its object's last revision: a user's edit of a record this
        # run wrote shows as the user's revision, and the cursor stops before it.
        end = _revision(self.current_cursor())
        revisions = changes_since(self.organization_id, CHANGE_KIND[kind], _revision(cursor))\
            .filter(revision__lte=end).order_by("revision").values_list("revision", flat=True)
        for revision in revisions.distinct().iterator():
            if revision not in own:
                return _cursor(revision - 1)
        return _cursor(end)

    def _persons(self) -> Any:
        return Person.objects.filter(organization_id=self.organization_id)

    def fetch(self, kind: Kind, keys: Sequence[str]) -> dict[str, CrmRecord]:
        if kind is Kind.CALENDAR:
            found = fetch_events(self.organization_id, keys)
            changed_at = dict(Change.objects.filter(
                kind=Change.Kind.EVENT, object_id__in=[int(k) for k in found])
                .values_list("object_id", "changed_at"))
            return {key: CrmRecord(key, str(event.revision), record,
                                   changed_at.get(event.pk))
                    for key, (event, record) in found.items()}
        ids = [int(k) for k in keys if k.isdigit()]
        persons = {p.pk: p for p in self._persons().filter(pk__in=ids)}
        companies: dict[int, str] = {}
        # A person's first company link is the one Exchange shows as "Company".
        for link in PersonCompany.objects.filter(person_id__in=persons).order_by("id")\
                .select_related("company"):
            companies.setdefault(link.person_id, link.company.name)
        changed_at = dict(Change.objects.filter(kind=Change.Kind.PERSON, object_id__in=persons)
                          .values_list("object_id", "changed_at"))
        return {str(pk): CrmRecord(str(pk), str(p.revision),
                                   person_record(p, companies.get(pk, "")),
                                   changed_at.get(pk))
                for pk, p in persons.items()}

    def in_scope(self, kind: Kind, keys: Sequence[str]) -> set[str]:
        ids = [int(k) for k in keys if k.isdigit()]
        if kind is Kind.CALENDAR:
            # The profile's own events; shared meetings it is linked to stay in scope through
            # their links (the agenda decides about those).
            return {str(pk) for pk in Event.objects.filter(
                organization_id=self.organization_id, pk__in=ids,
                owner_id=self._events.owner_id).values_list("pk", flat=True)}
        persons = self._persons().filter(pk__in=ids)
        if self.classification_node_id is not None:
            node = ClassificationNode.objects.get(pk=self.classification_node_id)
            persons = persons.in_branch(node)
        elif self.person_options.own_only:
            owner_id = self.person_options.owner_id
            persons = persons.of_user(owner_id) if owner_id is not None else persons.none()
        return {str(pk) for pk in persons.values_list("pk", flat=True)}

    # The look-ups by origin and by e-mail address select by their own indexed columns and
    # keep the organization's rows here: with the organization in the WHERE clause, SQLite
    # (without statistics, as the tables are right after a first import) takes the
    # organization's index and reads every person of it on each call, once per page of a
    # first sync: its cost per item grew with the address book.
    def find_by_origin(self, kind: Kind, origins: Sequence[str]) -> dict[str, str]:
        model = Event if kind is Kind.CALENDAR else Person
        rows = model.objects.filter(origin_item_id__in=[o for o in origins if o])\
            .values_list("pk", "origin_item_id", "organization_id")
        return {origin: str(pk) for pk, origin, organization_id in rows
                if organization_id == self.organization_id}

    def find_by_email(self, addresses: Sequence[str]) -> dict[str, list[str]]:
        wanted = {a.lower() for a in addresses if a}
        found: dict[str, list[str]] = {a: [] for a in wanted}
        if not wanted:
            return found
        addresses_list = sorted(wanted)
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(addresses_list), 500):   # bounded query parameters
            rows += Person.objects.with_any_email(addresses_list[start:start + 500]) \
                .values_list("pk", "organization_id", "email1", "email2", "email3")
        for pk, organization_id, *emails in rows:
            if organization_id != self.organization_id:
                continue
            for email in {e.lower() for e in emails if e}:
                if email in found:
                    found[email].append(str(pk))
        return found

    def find_by_name(self, keys: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {key: [] for key in keys if key}
        if not found:
            return found
        # Diacritics are compared as people read them, which SQL cannot do on every
        # database: the persons without an address are read (names and first company only)
        # and compared here.
        first_company = PersonCompany.objects.filter(person=OuterRef("pk")).order_by("id")\
            .values("company__name")[:1]
        rows = self._persons().filter(email1="", email2="", email3="")\
            .annotate(company_name=Subquery(first_company))\
            .values_list("pk", "first_name", "middle_name", "last_name", "company_name")
        for pk, first, middle, last, company in rows.iterator(chunk_size=2000):
            key = name_key(full_name(first, middle, last), company or "")
            if key in found:
                found[key].append(str(pk))
        return found

    def find_or_create_company(self, name: str) -> str:
        return str(Company.find_or_create_by_name(self.organization_id, name[:255]).pk)

    def persons_in_branch(self, node: str) -> Iterator[str]:
        branch = ClassificationNode.objects.get(pk=int(node), organization_id=self.organization_id)
        for pk in self._persons().in_branch(branch).values_list("pk", flat=True).iterator():
            yield str(pk)

    def read_photo(self, key: str) -> bytes | None:
        photo = self._persons().filter(pk=int(key)).values_list("photo", flat=True).first()
        return bytes(photo) if photo else None

    # writing
    def create(self, kind: Kind, record: Record, origin: str) -> CrmWrite:
        if isinstance(record, EventRecord):
            if record.start is None or record.end is None or record.end < record.start:
                return CrmWrite(error="The event has no valid start and end.")
            event = create_event(self.organization_id, record, origin, self._events)
            return CrmWrite(str(event.pk), str(event.revision))
        record = _of_type(record, ContactRecord)
        warnings: list[str] = []
        with transaction.atomic():
            person = Person(organization_id=self.organization_id, origin_item_id=origin,
                            owner_id=self.person_options.owner_id)
            apply_record(person, record, all_fields(), warnings)
            person.save()
            if record.company and record.company.strip():
                # A new person has no company yet: one insert, no lookup of the current one.
                # bulk_create sends no post_save, so the link does not bump the person to a
                # second revision: save() above recorded it in this same transaction, and a
                # first sync of thousands of contacts saves two revisions per person (bench/).
                company_id = int(self.find_or_create_company(record.company))
                PersonCompany.objects.bulk_create(
                    [PersonCompany(person=person, company_id=company_id)])
            if self.classification_node_id is not None:
                # Keep the new person inside the profile's scope (this bumps its revision).
                person.classification_nodes.add(self.classification_node_id)
                person.refresh_from_db(fields=["revision"])
        return CrmWrite(str(person.pk), str(person.revision), warnings=warnings)

    def create_many(self, kind: Kind, items: Sequence[tuple[Record, str]]) -> list[CrmWrite]:
        """New persons in bulk: one revision, a few statements per batch instead of a dozen
        per person (a first import of thousands of contacts spent its time in them; bench/).
        Events in bulk too (builtin_events.create_events); a single record goes through
        create()."""
        if kind is Kind.CALENDAR and len(items) >= 2:
            return self._create_events(items)
        if kind is not Kind.CONTACTS or len(items) < 2:
            return super().create_many(kind, items)
        persons: list[Person] = []
        warnings: list[list[str]] = []
        for item, origin in items:
            record = _of_type(item, ContactRecord)
            person = Person(organization_id=self.organization_id, origin_item_id=origin,
                            owner_id=self.person_options.owner_id)
            warnings.append([])
            apply_record(person, record, all_fields(), warnings[-1])
            persons.append(person)
        with transaction.atomic():
            # Tracked: one revision for the batch and its journal rows (crm.tracking).
            created = Person.objects.bulk_create(persons)
            # The company names as create() would look them up (cut to the column).
            wanted = [company_name_key(r.company[:255]) if isinstance(r, ContactRecord) else ""
                      for r, _ in items]
            companies = company_ids(self.organization_id, {
                key: r.company[:255] for key, (r, _) in zip(wanted, items, strict=True) if key})
            # Bulk link rows send no signals, so they do not bump the new persons to a second
            # revision: the persons were recorded a moment ago in this same transaction.
            PersonCompany.objects.bulk_create([
                PersonCompany(person_id=person.pk, company_id=companies[key])
                for person, key in zip(created, wanted, strict=True) if key])
            if self.classification_node_id is not None:
                # Keep the new persons inside the profile's scope.
                through = Person.classification_nodes.through
                through.objects.bulk_create([
                    through(person_id=person.pk, classificationnode_id=self.classification_node_id)
                    for person in created])
        return [CrmWrite(str(person.pk), str(person.revision), warnings=found)
                for person, found in zip(created, warnings, strict=True)]

    def _create_events(self, items: Sequence[tuple[Record, str]]) -> list[CrmWrite]:
        """create() of many events: the invalid ones refused as create() refuses them, the
        others created together."""
        results: list[CrmWrite | None] = []
        valid: list[tuple[EventRecord, str]] = []
        for item, origin in items:
            record = _of_type(item, EventRecord)
            if record.start is None or record.end is None or record.end < record.start:
                results.append(CrmWrite(error="The event has no valid start and end."))
                continue
            results.append(None)
            valid.append((record, origin))
        created = iter(create_events(self.organization_id, valid, self._events))
        return [result or CrmWrite(str((event := next(created)).pk), str(event.revision))
                for result in results]

    def _update_events(self, updates: Sequence[CrmUpdate]) -> list[CrmWrite]:
        """update() of many events: the invalid ones refused as update() refuses them, the
        others updated together."""
        results: list[CrmWrite | None] = []
        valid: list[tuple[str, EventRecord, frozenset[str]]] = []
        for update in updates:
            record = _of_type(update.record, EventRecord)
            if record.start is None or record.end is None or record.end < record.start:
                results.append(CrmWrite(update.key,
                                        error="The event has no valid start and end."))
                continue
            results.append(None)
            valid.append((update.key, record, update.fields))
        updated = iter(update_events(self.organization_id, valid, self._events))
        out: list[CrmWrite] = []
        for update, result in zip(updates, results, strict=True):
            if result is None:
                event = next(updated)
                result = CrmWrite(update.key, str(event.revision)) if event is not None else \
                    CrmWrite(update.key, error="The event no longer exists in the CRM.")
            out.append(result)
        return out

    def _stale(self, kind: Kind, updates: Sequence[CrmUpdate]) -> set[str]:
        """Keys of the records no longer in the version their update names. Call inside the
        writes' transaction: the rows stay locked (SQLite: the whole database, its
        transactions being IMMEDIATE) until the writes commit, so no user's edit slips in
        between this check and the write."""
        wanted = {u.key: u.version for u in updates if u.version and u.key.isdigit()}
        if not wanted:
            return set()
        model = Event if kind is Kind.CALENDAR else Person
        current = model.objects.select_for_update().filter(
            organization_id=self.organization_id, pk__in=[int(k) for k in wanted]
        ).values_list("pk", "revision")
        return {str(pk) for pk, revision in current if str(revision) != wanted[str(pk)]}

    def update(self, kind: Kind, key: str, record: Record, fields: frozenset[str],
               version: str = "") -> CrmWrite:
        with transaction.atomic():
            if self._stale(kind, [CrmUpdate(key, record, fields, version)]):
                return CrmWrite.changed_meanwhile(key)
            return self._update(key, record, fields)

    def _update(self, key: str, record: Record, fields: frozenset[str]) -> CrmWrite:
        if isinstance(record, EventRecord):
            if record.start is None or record.end is None or record.end < record.start:
                return CrmWrite(key, error="The event has no valid start and end.")
            event = update_event(self.organization_id, key, record, fields, self._events)
            if event is None:
                return CrmWrite(key, error="The event no longer exists in the CRM.")
            return CrmWrite(key, str(event.revision))
        record = _of_type(record, ContactRecord)
        warnings: list[str] = []
        # Inside update()'s or update_many()'s transaction: no savepoint of its own.
        person = self._persons().select_for_update().filter(pk=int(key)).first()
        if person is None:
            return CrmWrite(key, error="The person no longer exists in the CRM.")
        apply_record(person, record, fields, warnings)
        person.save()   # sets person.revision
        # Only a changed company link bumps the revision again; otherwise save()'s is
        # current and needs no query (a two-way first sync updates many linked pairs).
        if "company" in fields and set_first_company(self.organization_id, person, record.company):
            person.refresh_from_db(fields=["revision"])
        return CrmWrite(key, str(person.revision), warnings=warnings)

    def update_many(self, kind: Kind, updates: Sequence[CrmUpdate]) -> list[CrmWrite]:
        """Persons updated together: one locking read, one tracked bulk update (one revision
        for the batch), instead of a handful of statements per person. A changed company goes
        through set_first_company per person, as update() does it. Events in bulk too
        (builtin_events.update_events). Records changed since the version their update names
        are refused (`CrmWrite.changed_meanwhile`), the others written."""
        with transaction.atomic():
            stale = self._stale(kind, updates)
            fresh = [u for u in updates if u.key not in stale]
            if kind is Kind.CALENDAR and len(fresh) >= 2:
                written = iter(self._update_events(fresh))
            elif kind is Kind.CONTACTS and len(fresh) >= 2:
                written = iter(self._update_persons(fresh))
            else:
                written = iter([self._update(u.key, u.record, u.fields) for u in fresh])
            return [CrmWrite.changed_meanwhile(u.key) if u.key in stale else next(written)
                    for u in updates]

    def _update_persons(self, updates: Sequence[CrmUpdate]) -> list[CrmWrite]:
        """Inside update_many()'s transaction: the rows read here stay locked until it ends."""
        results: list[CrmWrite] = []
        ids = [int(u.key) for u in updates if u.key.isdigit()]
        persons = {str(p.pk): p for p in
                   self._persons().select_for_update().filter(pk__in=ids)}
        changed: dict[str, Person] = {}
        columns: set[str] = set()
        warnings: dict[str, list[str]] = {}
        for update in updates:
            person = persons.get(update.key)
            if person is None or update.key in changed:
                continue   # gone (reported below), or twice in one batch (_update() it)
            warnings[update.key] = []
            apply_record(person, _of_type(update.record, ContactRecord), update.fields,
                         warnings[update.key])
            columns.update(person_columns(update.fields))
            changed[update.key] = person
        # Unchanged columns are written back as read: the rows are locked meanwhile.
        Person.objects.bulk_update(list(changed.values()), sorted(columns))
        for update in updates:
            person = changed.pop(update.key, None)
            if person is None:
                results.append(
                    self._update(update.key, update.record, update.fields)
                    if update.key in persons else
                    CrmWrite(update.key, error="The person no longer exists in the CRM."))
                continue
            company = _of_type(update.record, ContactRecord).company
            if "company" in update.fields and set_first_company(self.organization_id, person,
                                                                company):
                person.refresh_from_db(fields=["revision"])
            results.append(CrmWrite(update.key, str(person.revision),
                                    warnings=warnings[update.key]))
        return results

    def delete(self, kind: Kind, key: str) -> CrmWrite:
        model = Event if kind is Kind.CALENDAR else Person
        model.objects.filter(organization_id=self.organization_id, pk=int(key)).delete()
        return CrmWrite(key)

    # reports
    def summaries(self, kind: Kind, keys: Sequence[str]) -> dict[str, RecordSummary]:
        return summaries(self.organization_id, kind, keys)

    def field_labels(self, kind: Kind) -> dict[str, str]:
        return field_labels(kind)

    def record_url(self, kind: Kind, key: str) -> str:
        return record_url(kind, key)

    # calendar lookups
    def find_by_uid(self, uids: Sequence[str]) -> dict[str, str]:
        """Events of the organization with these meeting UIDs, whoever owns them."""
        rows = Event.objects.filter(organization_id=self.organization_id,
                                    uid__in=[u for u in uids if u],
                                    recurrence_master__isnull=True)
        return {uid: str(pk) for pk, uid in rows.values_list("pk", "uid")}

    def leave_event(self, key: str, address: str, successor: str) -> CrmWrite:
        return leave_event(self.organization_id, key, address, self._events.owner_id,
                           int(successor) if successor.isdigit() else None)

    def events_in_window(self, start: dt.datetime, end: dt.datetime) -> list[str]:
        """The profile's singles overlapping the window, and series whose range may."""
        own = Event.objects.filter(organization_id=self.organization_id,
                                   owner_id=self._events.owner_id,
                                   recurrence_master__isnull=True)
        found = own.filter(Q(recurrence__isnull=True, start__lt=end, end__gt=start)
                           | Q(recurrence__isnull=False, start__lt=end))
        return [str(pk) for pk in found.order_by().values_list("pk", flat=True)]

    def set_photo(self, key: str, photo: bytes | None) -> CrmWrite:
        with transaction.atomic():
            person = self._persons().select_for_update().filter(pk=int(key)).first()
            if person is None:
                return CrmWrite(key, error="The person no longer exists in the CRM.")
            person.photo = photo or None
            person.photo_content_type = image_type(photo) if photo else ""
            person.save(update_fields=["photo", "photo_content_type"])
        return CrmWrite(key, str(person.revision), token=photo_token(photo))

    # identity stamps
    def stamp(self, kind: Kind, key: str) -> str:
        return f"crm:{self.organization_id}:{CHANGE_KIND[kind]}:{key}"

    def key_from_stamp(self, kind: Kind, stamp: str) -> str | None:
        prefix = f"crm:{self.organization_id}:{CHANGE_KIND[kind]}:"
        if stamp.startswith(prefix) and stamp[len(prefix):].isdigit():
            return stamp[len(prefix):]
        return None


RecordType = TypeVar("RecordType", ContactRecord, EventRecord)


def _of_type(record: Record, wanted: type[RecordType]) -> RecordType:
    """The record, as the kind the call was made for: persons take contacts, events take
    events. Another kind is a caller's mistake, refused before anything is written."""
    if not isinstance(record, wanted):
        raise TypeError(f"{wanted.__name__} expected, {type(record).__name__} given")
    return record


def _cursor(revision: int) -> str:
    """The cursor of a revision (0, before any change: "", as current_cursor gives it)."""
    return str(revision) if revision else ""


def _revision(cursor: str) -> int:
    """The revision a cursor of this store names. Any other text (never read, or a cursor of
    another CRM the organization used before) reads every change: the content hashes make
    the ones already synced no-ops."""
    return int(cursor) if cursor.isdigit() else 0
