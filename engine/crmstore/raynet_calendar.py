"""What a Raynet meeting holds beyond its own attributes: a series (its rule, time zone,
deleted and moved occurrences), its participants and its activity category.

A series written from Exchange is one meeting (its first occurrence) carrying a
`SeriesNote` external id (raynet_recurrence.py); each moved occurrence is a meeting of its
own, in the context of the series meeting (`activity`), with the external id
`exception:<series id>:<original start>`. Lists fold those into their series: the engine
sees one record, whose version joins the series meeting's and its moved occurrences'
versions, so an edit of a moved occurrence in Raynet is a change of the series.

Attendees become participants: the persons found by e-mail (none is created for an unknown
address, as in the built-in store); the owner is the participant FROM. Categories are
Raynet's activity categories, paired by name; an unknown name leaves the meeting without one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from django.conf import settings as django_settings

from engine import recurrence
from engine.crmstore.raynet_client import NotFound, RaynetClient
from engine.crmstore.raynet_mapping import event_record, meeting_body, parse, without_empty
from engine.crmstore.raynet_recurrence import SeriesNote, rule_from_raynet
from engine.records import EXCEPTION_FIELDS, EventRecord, exception_view

EXCEPTION_PREFIX = "exception:"
ORIGIN_PREFIX = "exchange:"
# Outlook's own private flag on a Raynet event made from it (whose `personal` is Raynet's
# private activity, always set as the add-in sets it): present means private in Outlook.
PRIVATE_PREFIX = "outlook-private:"
ISO = {"dateFormat": "ISO8601"}
# What a moved occurrence's meeting holds: an occurrence's own fields.
OCCURRENCE_FIELDS = frozenset(EXCEPTION_FIELDS) - {"original_start", "all_day"}
SERIES_FIELDS = frozenset({"recurrence", "exceptions", "deleted_occurrences", "time_zone"})
# What raynet_calendar writes of a create beside the mapped attributes.
EVENT_EXTRAS = SERIES_FIELDS | {"attendees", "categories", "private"}
_MOMENT = "%Y%m%dT%H%M%SZ"


def exception_ext_id(series_key: str, original_start: dt.datetime) -> str:
    return f"{EXCEPTION_PREFIX}{series_key}:{original_start.astimezone(dt.UTC):{_MOMENT}}"


def exception_of(ext_ids: Any) -> tuple[str, dt.datetime] | None:
    """(series key, original start) of a moved occurrence's meeting, else None."""
    for ext_id in ext_ids or ():
        text = str(ext_id)
        if text.startswith(EXCEPTION_PREFIX):
            key, _, moment = text.removeprefix(EXCEPTION_PREFIX).partition(":")
            try:
                return key, dt.datetime.strptime(moment, _MOMENT).replace(tzinfo=dt.UTC)
            except ValueError:
                return None
    return None


@dataclasses.dataclass
class RaynetCalendar:
    client: RaynetClient
    # The persons (Raynet ids as text) having each address: RaynetCrm.find_by_email.
    find_by_email: Callable[[Sequence[str]], dict[str, list[str]]]
    owner: Callable[[], int | None]
    entity: str = "meeting"         # or "event": the activity the calendar syncs with
    _categories: dict[str, int] | None = None

    # --- reading ----------------------------------------------------------------------------
    def read(self, data: dict[str, Any]) -> tuple[EventRecord, str]:
        """The meeting as an event record (a series with its exceptions), and its version."""
        record = event_record(data)
        if self._from_outlook(data):
            record.private = any(str(e).startswith(PRIVATE_PREFIX)
                                 for e in data.get("extIds") or ())
        category = data.get("category")
        if isinstance(category, dict) and category.get("value"):
            record.categories = (str(category["value"]),)
        note = SeriesNote.of(data.get("extIds"))
        version = str(data.get("_version", ""))
        if note is not None:
            record.recurrence, record.time_zone = note.rule, note.time_zone
            record.kind = "master"
            deleted = list(note.deleted)
            versions = []
            for key, original in note.exceptions:
                moved = self._detail(key)
                place = exception_of((moved or {}).get("extIds"))
                if moved is None or place is None:
                    # Deleted in Raynet: so is the occurrence.
                    versions.append("x")
                    deleted.append(original)
                    continue
                versions.append(str(moved.get("_version", "")))
                occurrence = exception_view(event_record(moved))
                occurrence.original_start = place[1]
                if moved.get("status") == "CANCELLED":
                    deleted.append(place[1])    # cancelled in Raynet: the occurrence is off
                else:
                    record.exceptions.append(occurrence)
            record.exceptions.sort(key=lambda e: e.original_start or dt.datetime.min)
            record.deleted_occurrences = tuple(sorted(set(deleted)))
            version = ".".join((version, *versions))
        else:
            rule = rule_from_raynet(data.get("recurrence"), record.start.date()
                                    if record.start else None)
            if rule is not None:
                # Made in Raynet: a series whatever Exchange may make of it, never a single.
                # Raynet names no zone: its occurrences keep the wall clock of the server's
                # (Raynet's users' own, as the calendar window's).
                record.recurrence, record.kind = rule, "master"
                record.time_zone = django_settings.TIME_ZONE
        return record, version

    def fold(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """List rows (full view) with the moved occurrences folded into their series: the
        series row carries the joined version and the latest modification of them all."""
        series: dict[str, dict[str, Any]] = {}
        moved: dict[str, dict[str, Any]] = {}
        made_in_raynet: dict[Any, dict[str, Any]] = {}
        for row in rows:
            row = dict(row)
            row["rowInfo.lastModifiedAt"] = _last_modified(row)
            if exception_of(row.get("extIds")) is not None:
                moved[str(row["id"])] = row
                continue
            group = _raynet_series(row)
            if group is not None:
                # Raynet may keep each occurrence of a series made there as an activity
                # showing the same recurrence: the first stands for the series, the rest
                # are its occurrences (never singles of their own in Exchange).
                first = made_in_raynet.setdefault(group, row)
                if _order(row) < _order(first):
                    series.pop(str(first["id"]), None)
                    made_in_raynet[group] = row
                elif first is not row:
                    continue
            series[str(row["id"])] = row
        for _key, row in series.items():
            note = SeriesNote.of(row.get("extIds"))
            if note is not None:
                versions = [str(moved[k].get("_version", "")) if k in moved else "x"
                            for k in note.keys]
                row["_version"] = ".".join((str(row.get("_version", "")), *versions))
                row["rowInfo.lastModifiedAt"] = max(
                    [row["rowInfo.lastModifiedAt"], *(moved[k]["rowInfo.lastModifiedAt"]
                                                      for k in note.keys if k in moved)],
                    key=lambda m: parse(m) or dt.datetime.min.replace(tzinfo=dt.UTC))
                if any(k not in moved for k in note.keys):
                    # A moved occurrence deleted in Raynet leaves no time of its own: the
                    # series reads as changed now, and then as unchanged (its version).
                    row["rowInfo.lastModifiedAt"] = dt.datetime.now(dt.UTC).isoformat()
            yield row
        for key, row in moved.items():
            series_key = exception_of(row.get("extIds"))[0]  # type: ignore[index]
            if series_key not in series:
                series[series_key] = row   # once, however many of its occurrences moved
                # Listed without its series (a read of what changed since the cursor): the
                # series reads as changed, its version read when it is fetched.
                yield {"id": int(series_key) if series_key.isdigit() else series_key,
                       "rowInfo.lastModifiedAt": row["rowInfo.lastModifiedAt"],
                       "_version": f"moved-{key}-{row.get('_version', '')}"}

    def overlaps(self, row: dict[str, Any], start: dt.datetime, end: dt.datetime) -> bool:
        """Whether the meeting (a series: any occurrence) may overlap [start, end)."""
        first, last = parse(row.get("scheduledFrom")), parse(row.get("scheduledTill"))
        if first is None or last is None:
            return False
        note = SeriesNote.of(row.get("extIds"))
        rule = note.rule if note else rule_from_raynet(row.get("recurrence"), first.date())
        if rule is None:
            return first < end and last > start
        zone = note.time_zone if note else django_settings.TIME_ZONE
        return recurrence.overlaps(rule, first, last - first, zone, start, end)

    # --- writing ----------------------------------------------------------------------------
    def for_create(self, body: dict[str, Any], record: EventRecord,
                   origin: str) -> tuple[dict[str, Any], list[str]]:
        """A create's body with the category; the external ids it adds: the series note,
        and for an event made in Outlook synced as a Raynet event, its private flag."""
        body = {**body, **self._category(record, EVENT_EXTRAS)}
        ext_ids = []
        if record.recurrence is not None:
            ext_ids.append(SeriesNote(record.recurrence, record.time_zone,
                                      tuple(record.deleted_occurrences)).ext_id())
        if self.entity == "event" and origin:
            # As Raynet's Outlook add-in: an event made in Outlook alone is a private
            # activity of the kind event (its kind is then changed in Raynet only).
            body["personal"] = True
            if record.private:
                ext_ids.append(_private_marker())
        return body, ext_ids

    def for_update(self, body: dict[str, Any], record: EventRecord, fields: frozenset[str],
                   data: dict[str, Any]) -> dict[str, Any]:
        body = {**body, **self._category(record, fields)}
        if self._from_outlook(data):
            body.pop("personal", None)    # Outlook's flag is the marker (after_write)
        return body

    def _category(self, record: EventRecord, fields: frozenset[str]) -> dict[str, Any]:
        """The activity category named first, if Raynet has one of that name (Raynet's API
        clears no category: an event losing its category keeps the meeting's)."""
        if "categories" in fields and record.categories:
            category = self.category_id(record.categories[0])
            if category is not None:
                return {"category": category}
        return {}

    def _from_outlook(self, data: dict[str, Any]) -> bool:
        """A Raynet event the sync made from an Outlook event."""
        return self.entity == "event" and any(
            str(e).startswith(ORIGIN_PREFIX) for e in data.get("extIds") or ())

    def writes_after_create(self, record: EventRecord) -> bool:
        """Whether a new record needs after_write() (a read and writes after its create):
        participants, a private marker, a series' parts. A plain meeting, or one whose
        attendees are no persons in Raynet, needs none: its create is its one request (a first
        sync of thousands, bench/)."""
        if (record.exceptions or record.deleted_occurrences or record.recurrence is not None
                or (self.entity == "event" and record.private)):
            return True
        # Participants only for attendees Raynet knows as persons (none is created).
        addresses = [a.email for a in record.attendees if a.email]
        return bool(addresses) and any(self.find_by_email(addresses).values())

    def after_write(self, key: str, data: dict[str, Any], record: EventRecord,
                    fields: frozenset[str]) -> None:
        """The participants and the series' parts a create or an edit of `fields` names."""
        if "attendees" in fields:
            self._write_participants(key, data, record)
        if "private" in fields and self._from_outlook(data):
            self._write_private(key, data, record.private)
        if fields & SERIES_FIELDS or "start" in fields:
            self._write_series(key, data, record, fields)

    def leave(self, key: str, data: dict[str, Any], address: str) -> None:
        """The persons having `address` are taken off the meeting's participants."""
        leaving = {int(k) for k in self.find_by_email([address]).get(address.lower(), [])}
        gone = [{"id": -int(p["id"])} for p in data.get("participants") or ()
                if not p.get("owner") and p.get("person") in leaving]
        if gone:
            self.client.call("POST", f"{self.entity}/{key}/", body={"participants": gone})

    def delete_parts(self, data: dict[str, Any]) -> None:
        note = SeriesNote.of(data.get("extIds"))
        for key in note.keys if note else ():
            with contextlib.suppress(NotFound):
                self.client.call("DELETE", f"{self.entity}/{key}/")

    def _write_participants(self, key: str, data: dict[str, Any], record: EventRecord) -> None:
        addresses = [a.email for a in record.attendees if a.email]
        found = self.find_by_email(addresses) if addresses else {}
        wanted = {int(keys[0]) for keys in found.values() if keys}
        current = {p.get("person"): p for p in data.get("participants") or ()
                   if not p.get("owner") and p.get("person")}
        changes: list[dict[str, Any]] = [{"id": -int(p["id"])} for person, p in current.items()
                                         if person not in wanted]
        changes += [{"person": person, "role": "TO"} for person in sorted(wanted - set(current))]
        if changes:
            self.client.call("POST", f"{self.entity}/{key}/", body={"participants": changes})

    def _write_private(self, key: str, data: dict[str, Any], private: bool) -> None:
        markers = [str(e) for e in data.get("extIds") or () if str(e).startswith(PRIVATE_PREFIX)]
        if private and not markers:
            self.client.call("PUT", f"{self.entity}/{key}/extId/",
                             body={"extId": _private_marker()})
        for marker in markers if not private else ():
            self.client.call("DELETE", f"{self.entity}/{key}/extId/{marker}")

    def _write_series(self, key: str, data: dict[str, Any], record: EventRecord,
                      fields: frozenset[str]) -> None:
        old = SeriesNote.of(data.get("extIds"))
        if record.recurrence is None and "recurrence" in fields:
            new: SeriesNote | None = None
        elif old is None and record.recurrence is None:
            return
        else:
            base = old if old is not None else SeriesNote(record.recurrence)  # type: ignore[arg-type]
            new = dataclasses.replace(
                base,
                rule=record.recurrence if "recurrence" in fields and record.recurrence
                else base.rule,
                time_zone=record.time_zone if "time_zone" in fields else base.time_zone,
                deleted=tuple(record.deleted_occurrences) if "deleted_occurrences" in fields
                else base.deleted)
        kept = list(old.exceptions) if old else []
        if new is None or "exceptions" in fields:
            kept, lost = self._write_exceptions(key, old, record.exceptions if new else [],
                                                record)
            if new is not None and lost:
                # Deleted (or cancelled) in Raynet, read as deleted occurrences: kept so.
                new = dataclasses.replace(new, deleted=tuple(sorted({*new.deleted, *lost})))
        if new is not None:
            new = dataclasses.replace(new, exceptions=tuple(kept))
        old_id, new_id = (old.ext_id() if old else None), (new.ext_id() if new else None)
        if old_id == new_id:
            return
        if new_id is not None:
            if old is not None:
                # A new token: the new note may not equal the old one as an external id.
                new = dataclasses.replace(new, token=SeriesNote(new.rule).token)
                new_id = new.ext_id()
            self.client.call("PUT", f"{self.entity}/{key}/extId/", body={"extId": new_id})
        if old_id is not None:
            self.client.call("DELETE", f"{self.entity}/{key}/extId/{old_id}")

    def _write_exceptions(self, key: str, old: SeriesNote | None,
                          wanted: Sequence[EventRecord],
                          series: EventRecord
                          ) -> tuple[list[tuple[str, dt.datetime]], list[dt.datetime]]:
        """The moved occurrences' meetings made to match `wanted`: their keys with their
        original starts, and the original starts of those deleted or cancelled in Raynet."""
        existing: dict[dt.datetime, tuple[str, dict[str, Any]]] = {}
        lost = []
        for moved_key, original in old.exceptions if old else ():
            moved = self._detail(moved_key)
            place = exception_of((moved or {}).get("extIds"))
            if moved is None or place is None or moved.get("status") == "CANCELLED":
                lost.append(original)
            if moved is not None and place is not None:
                existing[place[1]] = (moved_key, moved)
        keys = []
        for occurrence in sorted(wanted, key=lambda e: e.original_start or dt.datetime.min):
            if occurrence.original_start is None:
                continue
            original = occurrence.original_start.astimezone(dt.UTC)
            body = meeting_body(occurrence, OCCURRENCE_FIELDS)
            if original in existing:
                moved_key, _ = existing.pop(original)
                self.client.call("POST", f"{self.entity}/{moved_key}/", body=body)
            else:
                moved_key = self._create_exception(key, original, body, series)
            keys.append((moved_key, original))
        for moved_key, _ in existing.values():
            with contextlib.suppress(NotFound):
                self.client.call("DELETE", f"{self.entity}/{moved_key}/")
        return keys, lost

    def _create_exception(self, key: str, original: dt.datetime, body: dict[str, Any],
                          series: EventRecord) -> str:
        ext_id = exception_ext_id(key, original)
        try:
            # Made before a failure of an earlier write: taken, never made twice.
            found = self.client.get(f"{self.entity}/ext/{ext_id}/")["data"]
            self.client.call("POST", f"{self.entity}/{found['id']}/", body=body)
            return str(found["id"])
        except NotFound:
            pass
        created = without_empty(body)
        created.setdefault("title", series.subject or "-")
        created.update(priority="DEFAULT", activity=int(key), extIds=[ext_id])
        owner = self.owner()
        if owner is not None:
            created["owner"] = owner
        return str(self.client.call("PUT", f"{self.entity}/", body=created)["data"]["id"])

    # --- look-ups ---------------------------------------------------------------------------
    def category_id(self, name: str) -> int | None:
        if self._categories is None:
            self._categories = {}
            for row in self.client.pages("activityCategory", {}):
                self._categories.setdefault(str(row.get("code01") or "").casefold(),
                                            int(row["id"]))
        return self._categories.get(name.casefold())

    def _detail(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.get(f"{self.entity}/{key}/", **ISO)["data"]
        except NotFound:
            return None


def _raynet_series(row: dict[str, Any]) -> Any:
    """The id of the recurrence a series made in Raynet shows, else None."""
    recurrence = row.get("recurrence")
    if SeriesNote.of(row.get("extIds")) is not None or not isinstance(recurrence, dict):
        return None
    return recurrence.get("id")


def _order(row: dict[str, Any]) -> tuple[dt.datetime, int]:
    return (parse(row.get("scheduledFrom")) or dt.datetime.max.replace(tzinfo=dt.UTC),
            int(row["id"]))


def _private_marker() -> str:
    return PRIVATE_PREFIX + secrets.token_hex(6)    # an external id is unique per entity


def _last_modified(row: dict[str, Any]) -> Any:
    if row.get("rowInfo.lastModifiedAt"):
        return row["rowInfo.lastModifiedAt"]
    """A full list row has no lastModifiedAt: the later of its creation and its update, as
    Raynet wrote it."""
    values = [v for v in (row.get("rowInfo.createdAt"), row.get("rowInfo.updatedAt")) if v]
    return max(values, key=lambda v: parse(v) or dt.datetime.min.replace(tzinfo=dt.UTC),
               default=None)
