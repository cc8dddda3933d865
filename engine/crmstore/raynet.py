"""The Raynet CRM backend: persons (with their primary company) and meetings of one Raynet
instance, read and written through its REST API v2 (raynet_client.py), mapped by
raynet_mapping.py.

Keys are Raynet ids as text; versions are Raynet's `_version`, as text. Identity: a record
created from an Exchange item carries the external id "exchange:<origin>"; a meeting's iCal
UID, which Raynet has no attribute for, is the external id "uid:<uid>".

The change cursor is "<ISO time>|<ids seen at that time>|<ids known then>": changes are the
records modified at or after the time (less those already seen at it), deletions the known
ids no longer listed (a comparison of id sets, never an assumption).
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
    CrmRecord,
    CrmUpdate,
    CrmWrite,
    EmailMatch,
    FiledEmail,
    Filing,
    RecordSummary,
    SavedDocument,
)
from engine.crmstore.raynet_client import NotFound, RaynetClient, RaynetError
from engine.crmstore.raynet_companies import CompanyDirectory
from engine.crmstore.raynet_kind import RaynetKind, owner_of
from engine.crmstore.raynet_mapping import (
    CONTACTS_ONLY,
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
# A person's relationship to a company needs a position; a card without a job title gets
# this one, read back as no job title.
NO_POSITION = "–"
CONTACT_FIELDS = frozenset(f.name for f in dataclasses.fields(ContactRecord))
EVENT_FIELDS = frozenset(("subject", "start", "end", "location", "body", "private"))
# A look-up of more e-mail addresses or external ids reads every record once instead (a
# page of 1,000 per request against one or two requests per address or id).
LOOKED_UP_ONE_BY_ONE = 2
INVALID_TIMES = "An event needs a start and an end, the end not before the start."


class RaynetCrm(RaynetKind, CrmBackend):
    def __init__(self, client: RaynetClient, owner: int | str | None, *,
                 own_only: bool = False) -> None:
        """`owner`: the Raynet person owning what this backend creates, or the CRM user's
        login naming it (looked up when first needed: inside the run, whose errors are
        data, not while the run is being set up)."""
        self.client = client
        self._owner = owner
        self.own_only = own_only
        self.companies = CompanyDirectory(client, lambda: self.owner)
        self.listed = raynet_bulk.ListedRecords(self._list)

    @functools.cached_property
    def owner(self) -> int | None:
        if isinstance(self._owner, str):
            return owner_of(self.client, self._owner)
        return self._owner

    # --- changes ----------------------------------------------------------------------------
    def current_cursor(self) -> str:
        latest: dt.datetime | None = None
        keys: list[str] = []
        known: list[str] = []
        for entity in ENTITY.values():
            for row in self._row_infos(entity, {}):
                known.append(f"{entity}:{row['id']}")
                moment = parse(row.get("rowInfo.lastModifiedAt"))
                if moment is None:
                    continue
                if latest is None or moment > latest:
                    latest, keys = moment, []
                if moment == latest:
                    keys.append(f"{entity}:{row['id']}")
        if latest is None:
            return ""
        return "|".join((latest.isoformat(), ",".join(sorted(keys)),
                         ",".join(sorted(known))))

    def changes_since(self, kind: Kind, cursor: str) -> Iterator[CrmChange]:
        entity = ENTITY[kind]
        since, seen, known = self._read_cursor(cursor)
        rows = list(self._row_infos(entity, {}))
        listed = {str(row["id"]) for row in rows}
        changed = []
        for row in rows:
            moment = parse(row.get("rowInfo.lastModifiedAt"))
            key = str(row["id"])
            if since is not None and moment is not None and (
                    moment < since or (moment == since and f"{entity}:{key}" in seen)):
                continue
            changed.append((moment or dt.datetime.min.replace(tzinfo=dt.UTC), int(key),
                            str(row.get("_version", ""))))
        for _, key_id, version in sorted(changed):
            yield CrmChange(str(key_id), False, version)
        for key in sorted(k.split(":", 1)[1] for k in known if k.startswith(f"{entity}:")):
            if key not in listed:
                yield CrmChange(key, True)

    @staticmethod
    def _read_cursor(cursor: str) -> tuple[dt.datetime | None, set[str], set[str]]:
        """A cursor of another CRM (or none) reads as "never read"."""
        parts = cursor.split("|")
        if len(parts) != 3:
            return None, set(), set()
        try:
            since = dt.datetime.fromisoformat(parts[0])
        except ValueError:
            return None, set(), set()
        if since.tzinfo is None:
            return None, set(), set()
        return since, set(filter(None, parts[1].split(","))), set(filter(None,
                                                                        parts[2].split(",")))

    def _row_infos(self, entity: str, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self._list(entity, {**filters, **ISO, "view": "rowInfo"})

    row_infos = _row_infos

    def _list(self, entity: str, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if entity == "person":
            # The CRM's users are persons too; they are its accounts, not contacts to sync.
            filters = {**filters, **CONTACTS_ONLY}
        return self.client.pages(entity, filters)

    # --- records ----------------------------------------------------------------------------
    def _detail(self, entity: str, key: str) -> dict[str, Any] | None:
        if not key.isdigit():
            return None
        try:
            return self.client.get(f"{entity}/{key}/", **ISO)["data"]
        except NotFound:
            return None

    def _crm_record(self, kind: Kind, data: dict[str, Any]) -> CrmRecord:
        record: Record = person_record(data) if kind is Kind.CONTACTS else event_record(data)
        modified = parse(data.get("rowInfo.updatedAt")) or parse(data.get("rowInfo.createdAt"))
        return CrmRecord(str(data["id"]), str(data.get("_version", "")), record, modified)

    def fetch(self, kind: Kind, keys: Sequence[str]) -> dict[str, CrmRecord]:
        found = {}
        for key in dict.fromkeys(keys):
            data = self._detail(ENTITY[kind], key)
            if data is not None:
                found[key] = self._crm_record(kind, data)
        return found

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
                ENTITY[kind], {**filters, "id[IN]": chunk})}
        return found

    def create(self, kind: Kind, record: Record, origin: str) -> CrmWrite:
        written = self.put_record(kind, record, origin)
        if not written.ok:
            return written
        try:
            data = self._detail(ENTITY[kind], written.key)
        except RaynetError:
            data = None     # made all the same; its version is read with the next changes
        return CrmWrite(written.key, str((data or {}).get("_version", "")))

    def create_many(self, kind: Kind, items: Sequence[tuple[Record, str]]) -> list[CrmWrite]:
        """Sent several at a time, their versions read together (raynet_bulk.py)."""
        return raynet_bulk.create_many(self, kind, items)

    def update_many(self, kind: Kind, updates: Sequence[CrmUpdate]) -> list[CrmWrite]:
        return raynet_bulk.update_many(self, kind, updates)

    def put_record(self, kind: Kind, record: Record, origin: str) -> CrmWrite:
        """The create itself (one request, the external id in it): its key, no version."""
        self.listed.forget()
        try:
            return self._create(kind, record, origin)
        except RaynetError as exc:
            return CrmWrite(error=str(exc))

    def _create(self, kind: Kind, record: Record, origin: str) -> CrmWrite:
        entity = ENTITY[kind]
        ext_ids = [ORIGIN_PREFIX + origin] if origin else []
        if isinstance(record, EventRecord):
            if not valid_times(record):
                return CrmWrite(error=INVALID_TIMES)
            body = without_empty(meeting_body(record, EVENT_FIELDS))
            body.setdefault("title", record.subject or gettext("(no subject)"))
            body["priority"] = "DEFAULT"
            if record.uid:
                ext_ids.append(UID_PREFIX + record.uid)
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
        return CrmWrite(str(created["data"]["id"]))

    def update(self, kind: Kind, key: str, record: Record, fields: frozenset[str],
               version: str = "") -> CrmWrite:
        entity = ENTITY[kind]
        self.listed.forget()
        try:
            data = self._detail(entity, key)
            if data is None:
                return CrmWrite(key, error=gettext("The record is no longer in Raynet."))
            # Raynet has no conditional edit: the version is compared just before writing,
            # which leaves only the moment between the two requests open to a user's edit.
            if version and str(data.get("_version", "")) != version:
                return CrmWrite.changed_meanwhile(key)
            if isinstance(record, EventRecord):
                # The times it would have after the write: those named, else the stored ones.
                after = dataclasses.replace(event_record(data), **{
                    name: getattr(record, name) for name in fields & {"start", "end"}})
                if not valid_times(after):
                    return CrmWrite(key, error=INVALID_TIMES)
                body = meeting_body(record, fields)
            elif isinstance(record, ContactRecord):
                body = person_body(record, fields)
                if fields & RELATIONSHIP_FIELDS:
                    self._write_relationship(key, data, record, fields)
            else:
                return CrmWrite(key, error=f"Raynet holds no {type(record).__name__}.")
            if body:
                self.client.call("POST", f"{entity}/{key}/", body=body)
            written = self._detail(entity, key) or {}
        except RaynetError as exc:
            return CrmWrite(key, error=str(exc))
        return CrmWrite(key, str(written.get("_version", "")))

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
        self.listed.forget()
        try:
            if key.isdigit():
                self.client.call("DELETE", f"{ENTITY[kind]}/{key}/")
        except NotFound:
            pass
        except RaynetError as exc:
            return CrmWrite(key, error=str(exc))
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
            listed = raynet_bulk.by_ext_id(self.listed.rows(ENTITY[kind]),
                                           [ORIGIN_PREFIX + o for o in wanted])
            if listed is not None:
                return {o: listed[ORIGIN_PREFIX + o] for o in wanted
                        if ORIGIN_PREFIX + o in listed}
        found = {}
        for origin in wanted:
            key = self._by_ext_id(ENTITY[kind], ORIGIN_PREFIX + origin)
            if key is not None:
                found[origin] = key
        return found

    def find_by_email(self, addresses: Sequence[str]) -> dict[str, list[str]]:
        wanted = list(dict.fromkeys(a.lower() for a in addresses if a))
        if len(wanted) > LOOKED_UP_ONE_BY_ONE:
            # Two filtered lists per address would cost more than reading every person once.
            return raynet_bulk.persons_by_email(self.listed.rows("person"), wanted)
        found: dict[str, list[str]] = {}
        for address in wanted:
            keys: set[int] = set()
            for column in ("contactInfo.email", "contactInfo.email2"):
                keys |= {row["id"] for row in self._list("person", {
                    f"{column}[LIKE_NOCASE]": address, "view": "rowInfo"})}
            found[address] = [str(k) for k in sorted(keys)]
        return found

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
            listed = raynet_bulk.by_ext_id(self.listed.rows("meeting"),
                                           [UID_PREFIX + u for u in wanted])
            if listed is not None:
                return {u: listed[UID_PREFIX + u] for u in wanted if UID_PREFIX + u in listed}
        found = {}
        for uid in wanted:
            key = self._by_ext_id("meeting", UID_PREFIX + uid)
            if key is not None:
                found[uid] = key
        return found

    def events_in_window(self, start: dt.datetime, end: dt.datetime) -> list[str]:
        rows = self._list("meeting", {
            **ISO, "view": "rowInfo", OWNER_COLUMN[Kind.CALENDAR]: self.owner,
            "scheduledFrom[LT]": iso(end), "scheduledTill[GT]": iso(start)})
        return [str(row["id"]) for row in rows]

    def leave_event(self, key: str, address: str, successor: str) -> CrmWrite:
        try:
            data = self._detail("meeting", key)
            if data is None:
                return CrmWrite(key)
            if (data.get("owner") or {}).get("id") == self.owner and successor:
                self.client.call("POST", f"meeting/{key}/", body={"owner": int(successor)})
            written = self._detail("meeting", key) or {}
        except RaynetError as exc:
            return CrmWrite(key, error=str(exc))
        return CrmWrite(key, str(written.get("_version", "")))

    def read_photo(self, key: str) -> bytes | None:
        return None     # Raynet's API writes no photos (no PHOTOS capability)

    def set_photo(self, key: str, photo: bytes | None) -> CrmWrite:
        return CrmWrite(key, error=gettext("Raynet's API does not take photos."))

    def stamp(self, kind: Kind, key: str) -> str:
        return f"raynet:{self.client.instance}:{ENTITY[kind]}:{key}"

    def key_from_stamp(self, kind: Kind, stamp: str) -> str | None:
        prefix = f"raynet:{self.client.instance}:{ENTITY[kind]}:"
        key = stamp.removeprefix(prefix)
        return key if stamp.startswith(prefix) and key.isdigit() else None

    # --- reports ----------------------------------------------------------------------------
    def summaries(self, kind: Kind, keys: Sequence[str]) -> dict[str, RecordSummary]:
        found = {}
        for key in dict.fromkeys(keys):
            data = self._detail(ENTITY[kind], key)
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
        if not key.isdigit():
            return ""
        api = urlsplit(self.client.base_url)
        return (f"{api.scheme}://{api.netloc}/{self.client.instance}/"
                f"?view=DetailView&en={ENTITY[kind].capitalize()}&ei={key}")

    # --- e-mail import: not yet over Raynet -------------------------------------------------
    def filed_emails(self, user: str, origins: Sequence[str]) -> dict[str, FiledEmail]:
        raise NotImplementedError(_EMAIL_NOT_YET)

    def find_email(self, message: MessageRecord, origin: str, user: str) -> EmailMatch:
        raise NotImplementedError(_EMAIL_NOT_YET)

    def file_email(self, message: MessageRecord, origin: str, match: EmailMatch, user: str,
                   persons: Sequence[str], documents: Sequence[SavedDocument]) -> Filing:
        raise NotImplementedError(_EMAIL_NOT_YET)

    def email_documents(self, key: str) -> list[str]:
        raise NotImplementedError(_EMAIL_NOT_YET)

    def person_names(self, keys: Sequence[str]) -> dict[str, str]:
        return {key: summary.title for key, summary in self.summaries(Kind.CONTACTS,
                                                                      keys).items()}


_EMAIL_NOT_YET = ("E-mail import into Raynet (e-mail activities) is not available yet: "
                  "turn e-mail import off for profiles of a Raynet organization.")
