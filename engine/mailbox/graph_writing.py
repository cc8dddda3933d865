"""Writing with Graph: create, update, delete in `$batch`es, a result per item; after a series,
its exceptions and deleted occurrences; meetings with attendees are never written."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from engine.mailbox import graph_mapping as m
from engine.mailbox.base import (
    FolderInfo,
    FolderNotFound,
    ItemRef,
    Update,
    WriteResult,
    WriteStatus,
)
from engine.mailbox.events import (
    no_occurrence_at,
    occurrences_message,
    rewrites_occurrences,
    series_write,
)
from engine.mailbox.graph_connection import EVENTS_PREFER, GraphConnection, quoted
from engine.mailbox.graph_http import IMMUTABLE_IDS, BatchRequest, BatchResult
from engine.mailbox.wording import CONFLICT, GONE, unwritable
from engine.records import ContactRecord, EventRecord, Kind, MessageRecord, Record


class GraphWriting(GraphConnection):
    """GraphMailbox's writes: a result per item, never a meeting with attendees."""

    def _json(self, kind: Kind, record: Record, fields: frozenset[str] | None = None
              ) -> dict[str, Any]:
        if kind is Kind.CONTACTS and isinstance(record, ContactRecord):
            return m.contact_json(record, fields)
        if kind is Kind.CALENDAR and isinstance(record, EventRecord):
            # Graph mails invitations (or updates) whenever attendees are written, and has no
            # SendToNone: attendees are never written (the engine keeps them Exchange -> CRM).
            without = dataclasses.replace(record, attendees=())
            return m.event_json(without, self.access.time_zone,
                                None if fields is None else fields - {"attendees"})
        if kind is Kind.MAIL and isinstance(record, MessageRecord):
            return m.message_json(record, fields)
        raise ValueError(f"a {type(record).__name__} does not go into a {kind.value} folder")

    def create(self, folder: FolderInfo, records: Sequence[Record]) -> list[WriteResult]:
        if folder.kind is None:
            raise FolderNotFound(f"The folder {folder.path!r} holds no items this server syncs.")
        kind = folder.kind
        if kind is Kind.CALENDAR:
            target = f"{self.client.user}/calendars/{quoted(folder.id)}/events"
        elif kind is Kind.CONTACTS:
            target = f"{self.client.user}/contactFolders/{quoted(folder.id)}/contacts"
        else:
            target = f"{self.client.user}/mailFolders/{quoted(folder.id)}/messages"
        results: list[WriteResult | None] = [None] * len(records)
        requests: list[BatchRequest] = []
        indexes: list[int] = []
        for index, record in enumerate(records):
            try:
                body = self._json(kind, record)
            except (ValueError, TypeError) as exc:
                results[index] = WriteResult(WriteStatus.ERROR,
                                             message=unwritable(exc))
                continue
            requests.append(BatchRequest("POST", f"{target}?$select=id,changeKey", body))
            indexes.append(index)
        for index, answer in zip(indexes, self._batch(requests, self._write_prefer(kind)),
                                 strict=True):
            results[index] = _with_note(_write_result(answer), records[index])
        out = [r for r in results if r is not None]
        if kind is Kind.CALENDAR:
            out = self._with_occurrences(list(records), out)
        return out

    def _write_prefer(self, kind: Kind) -> str:
        return EVENTS_PREFER if kind is Kind.CALENDAR else IMMUTABLE_IDS

    def _meetings_with_attendees(self, kind: Kind, refs: Sequence[ItemRef]) -> set[str]:
        """Events this mailbox organizes that have attendees: Exchange Online mails them an
        update on any change and a cancellation on deletion, and Graph (unlike EWS's
        SendToNone) cannot say not to. One $batch of GETs per 20."""
        if kind is not Kind.CALENDAR or not refs:
            return set()
        answers = self._batch([BatchRequest("GET", self._item_url(
            kind, r.id, "?$select=id,isOrganizer,attendees")) for r in refs], EVENTS_PREFER)
        return {r.id for r, a in zip(refs, answers, strict=True)
                if a.ok and isinstance(a.body, dict) and a.body.get("isOrganizer")
                and a.body.get("attendees")}

    def update(self, kind: Kind, updates: Sequence[Update]) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(updates)
        requests: list[BatchRequest] = []
        indexes: list[int] = []
        meetings = self._meetings_with_attendees(kind, [u.ref for u in updates])
        for index, update in enumerate(updates):
            if update.ref.id in meetings:
                results[index] = WriteResult(WriteStatus.REFUSED, update.ref, MEETING_UPDATE)
                continue
            try:
                body = self._json(kind, update.record, update.fields)
            except (ValueError, TypeError) as exc:
                results[index] = WriteResult(WriteStatus.ERROR, update.ref,
                                             unwritable(exc))
                continue
            if not body:
                results[index] = WriteResult(WriteStatus.OK, update.ref)   # nothing to send
                continue
            headers = {"If-Match": update.ref.version} if update.ref.version else {}
            requests.append(BatchRequest("PATCH", f"{self._item_url(kind, update.ref.id)}"
                                         "?$select=id,changeKey", body, headers))
            indexes.append(index)
        for index, answer in zip(indexes, self._batch(requests, self._write_prefer(kind)),
                                 strict=True):
            results[index] = _write_result(answer, updates[index].ref)
        out = [r for r in results if r is not None]
        if kind is Kind.CALENDAR:
            series = [u.record for u in updates]
            redo = [rewrites_occurrences(u) for u in updates]
            written = self._with_occurrences(
                [r for r, again in zip(series, redo, strict=True) if again],
                [r for r, again in zip(out, redo, strict=True) if again])
            it = iter(written)
            out = [next(it) if again else r for r, again in zip(out, redo, strict=True)]
        return out

    def _with_occurrences(self, records: list[Record], results: list[WriteResult]
                          ) -> list[WriteResult]:
        """Series written: now their exceptions (instances patched) and deleted occurrences
        (instances deleted), all in $batches, then each master's new version."""
        todo = [(i, write) for i, (r, res) in enumerate(zip(records, results, strict=True))
                if (write := series_write(res, r)) is not None]
        if not todo:
            return results
        listing = []
        for _, write in todo:
            record = write.record
            slots = [e.original_start for e in record.exceptions if e.original_start] + \
                list(record.deleted_occurrences)
            first, last = min(slots), max(slots)
            listing.append(BatchRequest(
                "GET", f"{self._item_url(Kind.CALENDAR, write.master.id, '/instances')}?"
                f"startDateTime={m.format_time(first - dt.timedelta(days=1))}&endDateTime="
                f"{m.format_time(last + dt.timedelta(days=2))}"
                "&$select=id,originalStart,start,type&$top=1000"))
        instance_lists = self._batch(listing, EVENTS_PREFER)
        writes: list[BatchRequest] = []
        owners: list[int] = []
        problems: dict[int, list[str]] = {}
        for (index, write), answer in zip(todo, instance_lists, strict=True):
            record = write.record
            by_slot: dict[dt.datetime, str] = {}
            for value in (answer.body or {}).get("value") or [] if answer.ok else []:
                slot = m.parse_time(value.get("originalStart")) or \
                    m.parse_time((value.get("start") or {}).get("dateTime"))
                if slot is not None:
                    by_slot[slot] = value["id"]
            zone = record.time_zone or self.access.time_zone
            for exception in record.exceptions:
                target = by_slot.get(exception.original_start) if exception.original_start \
                    else None
                if target is None:
                    problems.setdefault(index, []).append(
                        no_occurrence_at(exception.original_start))
                    continue
                try:
                    body = m.exception_json(exception, self.access.time_zone, zone)
                except ValueError as exc:
                    problems.setdefault(index, []).append(str(exc))
                    continue
                writes.append(BatchRequest("PATCH", self._item_url(Kind.CALENDAR, target), body))
                owners.append(index)
            for doomed in record.deleted_occurrences:
                target = by_slot.get(doomed)
                if target is not None:
                    writes.append(BatchRequest("DELETE", self._item_url(Kind.CALENDAR, target)))
                    owners.append(index)
        for owner, answer in zip(owners, self._batch(writes, EVENTS_PREFER), strict=True):
            if not answer.ok and answer.status != 404:
                problems.setdefault(owner, []).append(str(answer.error()))
        versions = self._batch([BatchRequest("GET", self._item_url(
            Kind.CALENDAR, write.master.id, "?$select=id,changeKey")) for _, write in todo])
        out = list(results)
        for (index, write), answer in zip(todo, versions, strict=True):
            result = results[index]
            ref = ItemRef(answer.body["id"], answer.body.get("changeKey") or "") \
                if answer.ok and isinstance(answer.body, dict) else write.master
            out[index] = WriteResult(result.status, ref,
                                     occurrences_message(problems.get(index, []), result.message))
        return out

    def delete(self, kind: Kind, refs: Sequence[ItemRef]) -> list[WriteResult]:
        """DELETE moves an item to Deleted Items, and deletes one there for good; an immutable
        id follows the item into Deleted Items, so items found there already are left alone
        (deleted once already: recoverable, as the first deletion promised)."""
        trashed = self._in_deleted_items(kind, refs)
        meetings = self._meetings_with_attendees(kind, refs)
        doomed = [r for r in refs if r.id not in trashed and r.id not in meetings]
        answers = iter(self._batch([BatchRequest("DELETE", self._item_url(kind, r.id))
                                    for r in doomed], self._write_prefer(kind)))
        results = []
        for ref in refs:
            if ref.id in trashed:
                results.append(WriteResult(WriteStatus.OK, ref, "already gone"))
                continue
            if ref.id in meetings:
                results.append(WriteResult(WriteStatus.REFUSED, ref, MEETING_DELETE))
                continue
            result = _write_result(next(answers), ref)
            if result.status is WriteStatus.NOT_FOUND:
                result = WriteResult(WriteStatus.OK, ref, "already gone")
            results.append(result)
        return results

    def _in_deleted_items(self, kind: Kind, refs: Sequence[ItemRef]) -> set[str]:
        if not refs or kind is Kind.CALENDAR:   # events have no parentFolderId in v1.0
            return set()
        trash = self._get_folder_json(Kind.MAIL, "deleteditems")["id"]
        answers = self._batch([BatchRequest("GET", self._item_url(
            kind, r.id, "?$select=id,parentFolderId")) for r in refs])
        return {r.id for r, a in zip(refs, answers, strict=True)
                if a.ok and isinstance(a.body, dict) and a.body.get("parentFolderId") == trash}


MEETING_UPDATE = ("Not written to Exchange: a meeting this mailbox organizes, with attendees; "
                  "through Microsoft Graph, Exchange Online would mail them an update. Change "
                  "it in Outlook.")
MEETING_DELETE = ("Not deleted in Exchange: a meeting this mailbox organizes, with attendees; "
                  "through Microsoft Graph, Exchange Online would mail them a cancellation. "
                  "Cancel it in Outlook.")
ATTENDEES_LEFT_OUT = ("Attendees are not written through Microsoft Graph: it would mail "
                      "them invitations.")


def _with_note(result: WriteResult, record: Record) -> WriteResult:
    if result.ok and isinstance(record, EventRecord) and record.attendees:
        return dataclasses.replace(result, message=result.message or ATTENDEES_LEFT_OUT)
    return result


def _write_result(answer: BatchResult, ref: ItemRef | None = None) -> WriteResult:
    if answer.status == 412 or (not answer.ok and answer.error().code in (
            "ErrorIrresolvableConflict", "ErrorInvalidChangeKey", "PreconditionFailed")):
        return WriteResult(WriteStatus.CONFLICT, ref, CONFLICT)
    if answer.missing:
        return WriteResult(WriteStatus.NOT_FOUND, ref, GONE)
    if not answer.ok:
        error = answer.error()
        return WriteResult(WriteStatus.ERROR, ref, f"{error.code}: {error.message}".strip(": "))
    body = answer.body if isinstance(answer.body, dict) else {}
    if body.get("id"):
        return WriteResult(WriteStatus.OK,
                           ItemRef(str(body["id"]), str(body.get("changeKey") or "")))
    return WriteResult(WriteStatus.OK, ref)
