"""The Raynet CRM backend: persons (with their primary company) and meetings of one Raynet
instance, read and written through its REST API v2 (raynet_client.py), mapped by
raynet_mapping.py; the e-mail import's e-mails are raynet_mail.py's.

Keys are Raynet ids as text; versions are Raynet's `_version`, as text. Identity: a record
created from an Exchange item carries the external id "exchange:<origin>"; a meeting's iCal
UID, which Raynet has no attribute for, is the external id "uid:<uid>".

Changes are read by raynet_cursor.py: the records modified since the cursor's time, and the
deletions its journal of known ids found since (a comparison of id sets, never an
assumption).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext

from engine.crmstore import raynet_bulk
from engine.crmstore.base import (
    CrmBackend,
    CrmChange,
    CrmItemError,
    CrmRecord,
    CrmUpdate,
    CrmWrite,
    EmailMatch,
    FiledEmail,
    Filing,
    RecordSummary,
    SavedDocument,
)
from engine.crmstore.raynet_budget import CREATE_COST, DELETE_COST, UPDATE_COST, InstanceBudget
from engine.crmstore.raynet_calendar import EVENT_EXTRAS, RaynetCalendar
from engine.crmstore.raynet_client import NotFound, RaynetClient, RaynetError
from engine.crmstore.raynet_companies import CompanyDirectory
from engine.crmstore.raynet_cursor import KnownIds, RaynetChanges
from engine.crmstore.raynet_input import malformed
from engine.crmstore.raynet_kind import RaynetKind, instance_key, owner_of
from engine.crmstore.raynet_mail import RaynetMail
from engine.crmstore.raynet_mapping import (
    CONTACTS_ONLY,
    NO_POSITION,
    RELATIONSHIP_FIELDS,
    UID_PREFIX,
    event_record,
    iso,
    meeting_body,
    parse,
    person_body,
    person_record,
    valid_times,
    without_empty,
)
from engine.matching import full_name, name_key
from engine.records import ContactRecord, EventRecord, Kind, MessageRecord, Record

ENTITY = {Kind.CONTACTS: "person", Kind.CALENDAR: "meeting"}
# How a list filters by owner: a person's owner column, a meeting's owner's id.
OWNER_COLUMN = {Kind.CONTACTS: "owner", Kind.CALENDAR: "owner-id"}
ISO = {"dateFormat": "ISO8601"}
IDS_PER_LIST = 100     # ids in one `id[IN]` filter: a query string of well under 1 kB
ORIGIN_PREFIX = "exchange:"
CONTACT_FIELDS = frozenset(f.name for f in dataclasses.fields(ContactRecord))
EVENT_FIELDS = frozenset(("subject", "start", "end", "location", "body", "private"))
# What a create writes of an event: its attributes, then (raynet_calendar.py) its category,
# participants and series.
EVENT_CREATED = EVENT_FIELDS | EVENT_EXTRAS
# A look-up of more e-mail addresses or external ids reads every record once instead (a
# page of 1,000 per request against one or two requests per address or id).
LOOKED_UP_ONE_BY_ONE = 2
INVALID_TIMES = "An event needs a start and an end, the end not before the start."


class RaynetCrm(RaynetKind, CrmBackend):
    def __init__(self, client: RaynetClient, owner: int | str | None, *,
                 own_only: bool = False, activity: str = "meeting") -> None:
        """`owner`: the Raynet person owning what this backend creates, or the CRM user's
        login naming it (looked up when first needed: inside the run, whose errors are
        data, not while the run is being set up). `activity`: the Raynet activity the
        calendar syncs with, "meeting" or "event" (raynet_calendar.py)."""
        self.client = client
        self._owner = owner
        self.own_only = own_only
        self._budget = InstanceBudget(instance_key(client), probe=lambda: client.get(
            "meeting/", limit=1, view="rowInfo"))
        client.on_budget = lambda told: self._budget.record(told.limit, told.remaining,
                                                           told.reset)
        self._failures: list[CrmItemError] = []   # of the latest fetch()
        self.activity = activity
        self.entities = {**ENTITY, Kind.CALENDAR: activity}
        self.companies = CompanyDirectory(client, lambda: self.owner)
        self.listed = raynet_bulk.ListedRecords(self._list)

    @functools.cached_property
    def owner(self) -> int | None:
        if isinstance(self._owner, str):
            return owner_of(self.client, self._owner)
        return self._owner

    @functools.cached_property
    def calendar(self) -> RaynetCalendar:
        return RaynetCalendar(self.client, self.find_by_email, lambda: self.owner,
                              self.activity)

    # --- changes (raynet_cursor.py) -----------------------------------------------------------
    @functools.cached_property
    def _changes(self) -> RaynetChanges:
        return RaynetChanges(KnownIds(instance_key(self.client)), self._row_infos,
                             lambda entity, filters: self.client.get(
                                 f"{entity}/", **self._filters(entity, {
                                     **filters, **ISO, "view": "rowInfo"}))["data"] or [])

    def current_cursor(self) -> str:
        self._budget.check(self._changes.reads_needed(self.entities.values()))   # a run's start
        return self._changes.current_cursor(self.entities.values())

    def changes_since(self, kind: Kind, cursor: str) -> Iterator[CrmChange]:
        changes = list(self._changes.changes_since(self.entities[kind], cursor))
        self._budget.check(len(changes))   # each is fetched
        return iter(changes)

    def _row_infos(self, entity: str, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if entity == self.activity:
            # Read in full: a series' moved occurrences are folded into it by their ext ids.
            return self.calendar.fold(self._list(entity, {**filters, **ISO}))
        return self._list(entity, {**filters, **ISO, "view": "rowInfo"})

    row_infos = _row_infos

    def _list(self, entity: str, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self.client.pages(entity, self._filters(entity, filters))

    @staticmethod
    def _filters(entity: str, filters: dict[str, Any]) -> dict[str, Any]:
        if entity == "person":
            # The CRM's users are persons too; they are its accounts, not contacts to sync.
            return {**filters, **CONTACTS_ONLY}
        return filters

    # --- records ----------------------------------------------------------------------------
    def _detail(self, entity: str, key: str) -> dict[str, Any] | None:
        if not key.isdigit():
            return None
        try:
            return self.client.get(f"{entity}/{key}/", **ISO)["data"]
        except NotFound:
            return None

    def _crm_record(self, kind: Kind, data: dict[str, Any]) -> CrmRecord:
        if kind is Kind.CONTACTS:
            record: Record = person_record(data)
            version = str(data.get("_version", ""))
        else:
            record, version = self.calendar.read(data)
        modified = parse(data.get("rowInfo.updatedAt")) or parse(data.get("rowInfo.createdAt"))
        return CrmRecord(str(data["id"]), version, record, modified)

    def fetch(self, kind: Kind, keys: Sequence[str]) -> dict[str, CrmRecord]:
        """A record Raynet fails to give (a server error on it) or gives malformed is one
        of fetch_failures(), not a deletion; a failure of the connection ends the run."""
        found = {}
        self._failures = []
        for key in dict.fromkeys(keys):
            try:
                data = self._detail(self.entities[kind], key)
            except RaynetError as exc:
                if not exc.item_level:
                    raise
                self._failures.append(CrmItemError(key, str(exc)))
                continue
            if data is None:
                continue
            why = malformed(self.entities[kind], data)
            if why:
                self._failures.append(CrmItemError(key, why))
                continue
            found[key] = self._crm_record(kind, data)
        return found

    def fetch_failures(self) -> list[CrmItemError]:
        failures, self._failures = self._failures, []
        return failures

    def in_scope(self, kind: Kind, keys: Sequence[str]) -> set[str]:
        """Listed a hundred ids at a time (one request, not one per record)."""
        wanted = sorted({key for key in keys if key.isdigit()}, key=int)
        filters: dict[str, Any] = {}
        if kind is Kind.CALENDAR or self.own_only:
            filters[OWNER_COLUMN[kind]] = self.owner
        found = set()
        for start in range(0, len(wanted), IDS_PER_LIST):
            chunk = ",".join(wanted[start:start + IDS_PER_LIST])
            found |= {str(row["id"]) for row in self._row_infos(
                self.entities[kind], {**filters, "id[IN]": chunk})}
        return found

    def create(self, kind: Kind, record: Record, origin: str) -> CrmWrite:
        self._budget.check(CREATE_COST)
        written = self.put_record(kind, record, origin)
        self.made(kind, [written])
        if not written.ok or written.version:
            return written
        try:
            data = self._detail(self.entities[kind], written.key)
        except RaynetError:
            data = None     # made all the same; its version is read with the next changes
        return CrmWrite(written.key, self._version(kind, data))

    def create_many(self, kind: Kind, items: Sequence[tuple[Record, str]]) -> list[CrmWrite]:
        """Sent several at a time, their versions read together (raynet_bulk.py)."""
        self._budget.check(len(items) * CREATE_COST)   # the batch, before any of it
        return raynet_bulk.create_many(self, kind, items)

    def update_many(self, kind: Kind, updates: Sequence[CrmUpdate]) -> list[CrmWrite]:
        self._budget.check(len(updates) * UPDATE_COST)
        return raynet_bulk.update_many(self, kind, updates)

    def made(self, kind: Kind, written: Sequence[CrmWrite]) -> None:
        """Records this backend created: in the journal of known ids (their deletion is seen
        whenever it comes), and the budget their answers told written down. Called where
        the run's database connection is, never from a parallel write's thread."""
        self._changes.journal.saw(self.entities[kind], [int(w.key) for w in written
                                                        if w.ok and w.key.isdigit()])
        self._budget.flush()

    def put_record(self, kind: Kind, record: Record, origin: str) -> CrmWrite:
        """The create itself (one request, the external id in it): its key, and its version
        only where a write after the create had to read the record anyway."""
        self.listed.forget(self.entities[kind])
        if kind is Kind.CONTACTS:
            self.mail.forget_persons()
        try:
            return self._create(kind, record, origin)
        except RaynetError as exc:
            if not exc.item_level:
                raise   # the connection's: the run ends in its words
            return CrmWrite(error=str(exc))

    def _create(self, kind: Kind, record: Record, origin: str) -> CrmWrite:
        entity = self.entities[kind]
        ext_ids = [ORIGIN_PREFIX + origin] if origin else []
        if isinstance(record, EventRecord):
            if not valid_times(record):
                return CrmWrite(error=INVALID_TIMES)
            body = without_empty(meeting_body(record, EVENT_FIELDS))
            body.setdefault("title", record.subject or gettext("(no subject)"))
            body["priority"] = "DEFAULT"
            if record.uid:
                ext_ids.append(UID_PREFIX + record.uid)
            body, more = self.calendar.for_create(body, record, origin)
            ext_ids += more
        elif isinstance(record, ContactRecord):
            body = without_empty(person_body(record, CONTACT_FIELDS))
            # Raynet requires a last name: a card without one is named as Exchange shows it.
            body.setdefault("lastName", record.shown_name() or gettext("(no name)"))
            if record.company:
                body["relationship"] = {"company": int(self.find_or_create_company(
                    record.company)), "type": record.job_title or NO_POSITION}
        else:
            return CrmWrite(error=f"Raynet holds no {type(record).__name__}.")
        if self.owner is not None:
            body["owner"] = self.owner
        if ext_ids:
            body["extIds"] = ext_ids
        created = self.client.call("PUT", f"{entity}/", body=body)
        key = str(created["data"]["id"])
        if not isinstance(record, EventRecord) or not self.calendar.writes_after_create(record):
            return CrmWrite(key)   # its version is read with the batch's (raynet_bulk.py)
        data = self._detail(entity, key)
        if data is not None:
            self.calendar.after_write(key, data, record, EVENT_CREATED)
            data = self._detail(entity, key)
        return CrmWrite(key, self._version(kind, data))

    def _version(self, kind: Kind, data: dict[str, Any] | None) -> str:
        if data is None:
            return ""
        return self._crm_record(kind, data).version

    def update(self, kind: Kind, key: str, record: Record, fields: frozenset[str],
               version: str = "") -> CrmWrite:
        self._budget.check(UPDATE_COST)
        written = self.edit_record(kind, key, record, fields, version)
        self._budget.flush()
        return written

    def edit_record(self, kind: Kind, key: str, record: Record, fields: frozenset[str],
                    version: str = "") -> CrmWrite:
        """update() without the budget's check: requests only, no database (run in a
        parallel write's thread by update_many)."""
        entity = self.entities[kind]
        self.listed.forget(self.entities[kind])
        if kind is Kind.CONTACTS:
            self.mail.forget_persons()
        try:
            data = self._detail(entity, key)
            if data is None:
                return CrmWrite(key, error=gettext("The record is no longer in Raynet."))
            # Raynet has no conditional edit: the version is compared just before writing,
            # which leaves only the moment between the two requests open to a user's edit.
            if version and self._version(kind, data) != version:
                return CrmWrite.changed_meanwhile(key)
            if isinstance(record, EventRecord):
                # The times it would have after the write: those named, else the stored ones.
                after = dataclasses.replace(event_record(data), **{
                    name: getattr(record, name) for name in fields & {"start", "end"}})
                if not valid_times(after):
                    return CrmWrite(key, error=INVALID_TIMES)
                body = self.calendar.for_update(meeting_body(record, fields), record, fields,
                                                data)
            elif isinstance(record, ContactRecord):
                body = person_body(record, fields)
                if fields & RELATIONSHIP_FIELDS:
                    self._write_relationship(key, data, record, fields)
            else:
                return CrmWrite(key, error=f"Raynet holds no {type(record).__name__}.")
            if body:
                self.client.call("POST", f"{entity}/{key}/", body=body)
            if isinstance(record, EventRecord):
                self.calendar.after_write(key, data, record, fields)
            written = self._detail(entity, key)
        except RaynetError as exc:
            if not exc.item_level:
                raise
            return CrmWrite(key, error=str(exc))
        return CrmWrite(key, self._version(kind, written))

    def _write_relationship(self, key: str, data: dict[str, Any], record: ContactRecord,
                            fields: frozenset[str]) -> None:
        primary = data.get("primaryRelationship") or None
        current = person_record(data)
        company = record.company if "company" in fields else current.company
        job_title = record.job_title if "job_title" in fields else current.job_title
        if primary is not None:
            if not company:
                self.client.call("DELETE", f"person/{key}/relationship/{primary['id']}/")
                return
            self.client.call("POST", f"person/{key}/relationship/{primary['id']}/", body={
                "company": int(self.find_or_create_company(company)),
                "type": job_title or NO_POSITION})
        elif company:
            self.client.call("PUT", f"person/{key}/relationship/", body={
                "company": int(self.find_or_create_company(company)),
                "type": job_title or NO_POSITION})

    def delete(self, kind: Kind, key: str) -> CrmWrite:
        self._budget.check(DELETE_COST)
        self.listed.forget(self.entities[kind])
        if kind is Kind.CONTACTS:
            self.mail.forget_persons()
        try:
            if key.isdigit():
                if kind is Kind.CALENDAR:
                    self.calendar.delete_parts(self._detail(self.activity, key) or {})
                self.client.call("DELETE", f"{self.entities[kind]}/{key}/")
        except NotFound:
            pass
        except RaynetError as exc:
            if not exc.item_level:
                raise
            return CrmWrite(key, error=str(exc))
        if key.isdigit():
            self._changes.journal.gone(self.entities[kind], [int(key)])
        return CrmWrite(key)

    # --- look-ups ---------------------------------------------------------------------------
    def _by_ext_id(self, entity: str, ext_id: str) -> str | None:
        try:
            return str(self.client.get(f"{entity}/ext/{ext_id}/")["data"]["id"])
        except NotFound:
            return None

    def find_by_origin(self, kind: Kind, origins: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(o for o in origins if o))
        if len(wanted) > LOOKED_UP_ONE_BY_ONE:
            # One read of the records instead of a request per item (raynet_bulk.py).
            listed = raynet_bulk.by_ext_id(self.listed.rows(self.entities[kind]),
                                           [ORIGIN_PREFIX + o for o in wanted])
            if listed is not None:
                return {o: listed[ORIGIN_PREFIX + o] for o in wanted
                        if ORIGIN_PREFIX + o in listed}
        found = {}
        for origin in wanted:
            key = self._by_ext_id(self.entities[kind], ORIGIN_PREFIX + origin)
            if key is not None:
                found[origin] = key
        return found

    def find_by_email(self, addresses: Sequence[str]) -> dict[str, list[str]]:
        wanted = list(dict.fromkeys(a.lower() for a in addresses if a))
        if len(wanted) > LOOKED_UP_ONE_BY_ONE or self.listed.holds("person"):
            # Two filtered lists per address would cost more than reading every person once
            # (a read shared with the batch's look-ups by origin, raynet_bulk.py; kept until
            # this backend writes).
            return raynet_bulk.persons_by_email(self.listed.rows("person"), wanted)
        return self.mail.find_persons(wanted)

    def find_by_name(self, keys: Sequence[str]) -> dict[str, list[str]]:
        wanted = set(filter(None, keys))
        found: dict[str, list[str]] = {key: [] for key in wanted}
        if not wanted:
            return found
        for row in self._list("person", dict(ISO)):
            record = person_record(row)
            if record.emails:
                continue
            key = name_key(full_name(record.first_name, "", record.last_name), record.company)
            if key in wanted:
                found.setdefault(key, []).append(str(row["id"]))
        return found

    def find_or_create_company(self, name: str) -> str:
        """By name (case and spaces aside) in the run's list of companies, or created."""
        return self.companies.find_or_create(name)

    def persons_in_branch(self, node: str) -> Iterator[str]:
        raise NotImplementedError("Raynet has no classification tree to take persons from.")

    def find_by_uid(self, uids: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(u for u in uids if u))
        if len(wanted) > LOOKED_UP_ONE_BY_ONE:
            listed = raynet_bulk.by_ext_id(self.listed.rows(self.activity),
                                           [UID_PREFIX + u for u in wanted])
            if listed is not None:
                return {u: listed[UID_PREFIX + u] for u in wanted if UID_PREFIX + u in listed}
        found = {}
        for uid in wanted:
            key = self._by_ext_id(self.activity, UID_PREFIX + uid)
            if key is not None:
                found[uid] = key
        return found

    def events_in_window(self, start: dt.datetime, end: dt.datetime) -> list[str]:
        # A series begins before the window it recurs in: every meeting begun before the
        # window's end is read, and a series' occurrences are compared with the window.
        rows = self._row_infos(self.activity, {OWNER_COLUMN[Kind.CALENDAR]: self.owner,
                                               "scheduledFrom[LT]": iso(end)})
        return [str(row["id"]) for row in rows if self.calendar.overlaps(row, start, end)]

    def leave_event(self, key: str, address: str, successor: str) -> CrmWrite:
        try:
            data = self._detail(self.activity, key)
            if data is None:
                return CrmWrite(key)
            self.calendar.leave(key, data, address)
            if (data.get("owner") or {}).get("id") == self.owner and successor:
                self.client.call("POST", f"{self.activity}/{key}/", body={"owner": int(successor)})
            written = self._detail(self.activity, key)
        except RaynetError as exc:
            return CrmWrite(key, error=str(exc))
        return CrmWrite(key, self._version(Kind.CALENDAR, written))

    def read_photo(self, key: str) -> bytes | None:
        return None     # Raynet's API writes no photos (no PHOTOS capability)

    def set_photo(self, key: str, photo: bytes | None) -> CrmWrite:
        return CrmWrite(key, error=gettext("Raynet's API does not take photos."))

    def stamp(self, kind: Kind, key: str) -> str:
        return f"raynet:{self.client.instance}:{self.entities[kind]}:{key}"

    def key_from_stamp(self, kind: Kind, stamp: str) -> str | None:
        prefix = f"raynet:{self.client.instance}:{self.entities[kind]}:"
        key = stamp.removeprefix(prefix)
        return key if stamp.startswith(prefix) and key.isdigit() else None

    # --- reports ----------------------------------------------------------------------------
    def summaries(self, kind: Kind, keys: Sequence[str]) -> dict[str, RecordSummary]:
        found = {}
        for key in dict.fromkeys(keys):
            data = self._detail(self.entities[kind], key)
            if data is None:
                continue
            record = self._crm_record(kind, data).record
            if isinstance(record, ContactRecord):
                companies = tuple(str((r.get("company") or {}).get("name") or "")
                                  for r in data.get("relationships") or ())
                title = " ".join(p for p in (record.first_name, record.last_name) if p)
                found[key] = RecordSummary(key, title, record, companies=companies)
            elif isinstance(record, EventRecord):
                owner = str((data.get("owner") or {}).get("fullName") or "")
                found[key] = RecordSummary(key, record.subject, record, owner=owner)
        return found

    def field_labels(self, kind: Kind) -> dict[str, str]:
        if kind is not Kind.CONTACTS:
            return {}
        return {
            "title": gettext("Title before name"), "first_name": gettext("First name"),
            "last_name": gettext("Last name"), "suffix": gettext("Title after name"),
            "company": gettext("Client"), "job_title": gettext("Position"),
            "web_page": gettext("Web"), "email1": gettext("E-mail"),
            "email2": gettext("E-mail 2"), "phone_mobile": gettext("Phone 1"),
            "phone_business": gettext("Phone 2"), "phone_business_fax": gettext("Fax"),
            "note": gettext("Note"), "home_street": gettext("Private address: street"),
            "home_city": gettext("Private address: city"),
            "home_region": gettext("Private address: region"),
            "home_postal_code": gettext("Private address: ZIP code"),
            "home_country": gettext("Private address: country"),
            # Raynet keeps a business address on the company: a report names it so.
            "business_street": gettext("Client's address: street"),
            "business_city": gettext("Client's address: city"),
            "business_region": gettext("Client's address: region"),
            "business_postal_code": gettext("Client's address: ZIP code"),
            "business_country": gettext("Client's address: country")}

    def record_url(self, kind: Kind, key: str) -> str:
        entity = "email" if kind is Kind.MAIL else self.entities.get(kind)
        if not key.isdigit() or entity is None:
            return ""
        api = urlsplit(self.client.base_url)
        return (f"{api.scheme}://{api.netloc}/{self.client.instance}/"
                f"?view=DetailView&en={entity.capitalize()}&ei={key}")

    # --- e-mail import (raynet_mail.py) -----------------------------------------------------
    @functools.cached_property
    def mail(self) -> RaynetMail:
        return RaynetMail(self.client, lambda: self.owner)

    def own_user(self) -> str:
        return str(self.owner) if self.owner is not None else ""

    def filed_emails(self, user: str, origins: Sequence[str]) -> dict[str, FiledEmail]:
        return self.mail.filed_emails(user, origins)

    def find_email(self, message: MessageRecord, origin: str, user: str) -> EmailMatch:
        return self.mail.find_email(message, origin, user)

    def file_email(self, message: MessageRecord, origin: str, match: EmailMatch, user: str,
                   persons: Sequence[str], documents: Sequence[SavedDocument]) -> Filing:
        return self.mail.file_email(message, origin, match, user, persons, documents)

    def email_documents(self, key: str) -> list[str]:
        return self.mail.email_documents(key)

    def person_names(self, keys: Sequence[str]) -> dict[str, str]:
        return self.mail.person_names(keys)
