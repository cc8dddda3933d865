"""Writing with EWS: create, update, delete and move in batches, a result per item; after a
series, its exceptions and deleted occurrences."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from exchangelib import CalendarItem, Contact, Message
from exchangelib import errors as exchange_errors
from exchangelib.items import BulkCreateResult
from exchangelib.properties import ItemId, OccurrenceItemId

from engine.mailbox.base import (
    BATCH_SIZE,
    FolderInfo,
    FolderNotFound,
    ItemRef,
    MailboxError,
    Update,
    WriteResult,
    WriteStatus,
)
from engine.mailbox.events import (
    SeriesWrite,
    no_occurrence_at,
    occurrences_message,
    rewrites_occurrences,
    series_write,
)
from engine.mailbox.ews_connection import EwsConnection
from engine.mailbox.ews_errors import ITEM_MISSING
from engine.mailbox.ews_mapping import (
    FIELD_MAP,
    ITEM_CLASS,
    contact_values,
    event_values,
    message_values,
)
from engine.mailbox.ews_protocol import traffic
from engine.mailbox.ews_services import (
    PerItemCreate,
    PerItemDelete,
    PerItemGet,
    PerItemMove,
    PerItemUpdate,
)
from engine.mailbox.wording import CONFLICT, GONE, NO_ANSWER, short, unwritable
from engine.records import ContactRecord, EventRecord, Kind, MessageRecord, Record
from engine.recurrence import index_of


@dataclasses.dataclass
class _SeriesOccurrences:
    """The occurrence writes of one series in a batch: `position` is its place in the batch."""

    position: int
    master: ItemRef
    changes: list[tuple[Any, list[str]]] = dataclasses.field(default_factory=list)
    doomed: list[Any] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)


class EwsWriting(EwsConnection):
    """EwsMailbox's writes: a result per item, never an invitation or a cancellation."""

    def _item(self, kind: Kind, record: Record, **kwargs: Any) -> Any:
        if kind is Kind.CONTACTS and isinstance(record, ContactRecord):
            values = contact_values(record)
        elif kind is Kind.CALENDAR and isinstance(record, EventRecord):
            values = event_values(record, self.access.time_zone)
        elif kind is Kind.MAIL and isinstance(record, MessageRecord):
            values = message_values(record)
        else:
            raise ValueError(f"a {type(record).__name__} does not go into a {kind.value} folder")
        return ITEM_CLASS[kind](account=self.account, **kwargs,
                                **{k: v for k, v in values.items() if v is not None})

    def create(self, folder: FolderInfo, records: Sequence[Record]) -> list[WriteResult]:
        if folder.kind is None:
            raise FolderNotFound(f"The folder {folder.path!r} holds no items this server syncs.")
        kind = folder.kind
        results: list[WriteResult] = []
        for start in range(0, len(records), BATCH_SIZE):
            chunk = records[start:start + BATCH_SIZE]
            items: dict[int, Any] = {}
            invalid: dict[int, str] = {}
            for index, record in enumerate(chunk):
                try:
                    items[index] = self._item(kind, record, folder=self._folder(folder))
                except (ValueError, TypeError) as exc:
                    invalid[index] = unwritable(exc)
            sent_before = traffic.requests
            try:
                answers = self._create_items(folder, list(items.values()))
            except MailboxError as exc:
                # exchangelib validates while serializing the whole batch, before sending
                # it: one bad item fails all of them, and nothing went out. Only then is
                # each validated on its own and the valid ones sent (validating all of them
                # up front cost as much as serializing them again; bench/).
                if traffic.requests != sent_before or \
                        not isinstance(exc.__cause__, ValueError | TypeError):
                    raise
                for index, item in list(items.items()):
                    try:
                        item.clean(version=self.account.version)
                    except (ValueError, TypeError) as error:
                        invalid[index] = unwritable(error)
                        del items[index]
                answers = self._create_items(folder, list(items.values()))
            written: list[WriteResult] = []
            for index in range(len(chunk)):
                if index in invalid:
                    written.append(WriteResult(WriteStatus.ERROR, message=invalid[index]))
                    continue
                written.append(_write_result(next(answers, None)))
            results += self._with_occurrences(list(zip(written, chunk, strict=True)))
        return results

    def _create_items(self, folder: FolderInfo, items: list[Any]) -> Iterator[Any]:
        """One CreateItem request for `items`; its answers, in order."""
        if not items:
            return iter([])
        with self._errors():
            return iter(list(PerItemCreate(account=self.account, chunk_size=BATCH_SIZE).call(
                items=items, folder=self._folder(folder), message_disposition="SaveOnly",
                send_meeting_invitations="SendToNone")))

    def update(self, kind: Kind, updates: Sequence[Update]) -> list[WriteResult]:
        results: list[WriteResult] = []
        field_map = FIELD_MAP[kind]
        for start in range(0, len(updates), BATCH_SIZE):
            chunk = updates[start:start + BATCH_SIZE]
            pairs: list[tuple[Any, list[str]]] = []
            invalid: dict[int, str] = {}
            for index, update in enumerate(chunk):
                names = sorted({field_map[f] for f in update.fields if f in field_map})
                if kind is Kind.CALENDAR and "required_attendees" in names:
                    names.append("optional_attendees")
                if kind is Kind.CONTACTS and ({"surname", "given_name"} & set(names)):
                    names.append("file_as")
                try:
                    item = self._item(kind, update.record, id=update.ref.id,
                                      changekey=update.ref.version or None)
                except (ValueError, TypeError) as exc:
                    invalid[index] = unwritable(exc)
                    continue
                if not names:
                    invalid[index] = ""   # nothing Exchange holds changed: nothing to send
                    continue
                pairs.append((item, names))
            with self._errors():
                answers = iter(list(PerItemUpdate(account=self.account, chunk_size=BATCH_SIZE).call(
                    items=pairs, conflict_resolution="NeverOverwrite",
                    message_disposition="SaveOnly",
                    send_meeting_invitations_or_cancellations="SendToNone",
                    suppress_read_receipts=True)) if pairs else [])
            written: list[tuple[WriteResult, Record | None]] = []
            for index, update in enumerate(chunk):
                if index in invalid and not invalid[index]:
                    # Nothing of the item itself to send; its occurrences (a moved one
                    # changed, one more deleted) are still written.
                    written.append((WriteResult(WriteStatus.OK, update.ref),
                                    update.record if rewrites_occurrences(update) else None))
                    continue
                if index in invalid:
                    written.append((WriteResult(WriteStatus.ERROR, update.ref, invalid[index]),
                                    None))
                    continue
                result = _write_result(next(answers, None), update.ref)
                written.append((result, update.record if rewrites_occurrences(update) else None))
            results += self._with_occurrences(written)
        return results

    def _with_occurrences(self, written: Sequence[tuple[WriteResult, Record | None]]
                          ) -> list[WriteResult]:
        """A batch's series written: now their exceptions and deleted occurrences, which
        Exchange keeps on the occurrences themselves (addressed by their index in the series),
        for the whole batch in one UpdateItem, one DeleteItem and one GetItem (the masters'
        new change keys) however many series it holds. `None` for a record: nothing to do."""
        series: list[_SeriesOccurrences] = []
        for position, (result, record) in enumerate(written):
            write = series_write(result, record)
            if write is not None:
                series.append(self._series_occurrences(position, write))
        results = [result for result, _ in written]
        if not series:
            return results
        changes = [change for one in series for change in one.changes]
        doomed = [target for one in series for target in one.doomed]
        with self._errors():
            updated = list(PerItemUpdate(account=self.account, chunk_size=BATCH_SIZE).call(
                items=changes, conflict_resolution="AlwaysOverwrite",
                message_disposition="SaveOnly",
                send_meeting_invitations_or_cancellations="SendToNone",
                suppress_read_receipts=True)) if changes else []
            deleted = list(PerItemDelete(account=self.account, chunk_size=BATCH_SIZE).call(
                items=doomed, delete_type="MoveToDeletedItems",
                send_meeting_cancellations="SendToNone",
                affected_task_occurrences="AllOccurrences", suppress_read_receipts=True)
            ) if doomed else []
            current = list(PerItemGet(account=self.account, chunk_size=BATCH_SIZE).call(
                items=[ItemId(one.master.id) for one in series], additional_fields=set(),
                shape="IdOnly"))
        updated_answers, deleted_answers = iter(updated), iter(deleted)
        for one, now in zip(series, current, strict=False):
            # An occurrence deleted already (the series written again) is no problem.
            answers = [next(updated_answers, None) for _ in one.changes] + [
                None if isinstance(a, DELETED_ALREADY) else a
                for a in (next(deleted_answers, None) for _ in one.doomed)]
            problems = one.problems + [
                short(str(a)) for a in answers if isinstance(a, Exception)
                and not isinstance(a, ITEM_MISSING)]
            ref = ItemRef(now.id, now.changekey or "") if not isinstance(now, Exception) \
                else one.master
            result = results[one.position]
            results[one.position] = WriteResult(result.status, ref,
                                                occurrences_message(problems, result.message))
        return results

    def _series_occurrences(self, position: int, write: SeriesWrite) -> _SeriesOccurrences:
        """What writing a series' exceptions and deleted occurrences takes (no I/O)."""
        master, record, rule, first = write.master, write.record, write.rule, write.first
        zone = record.time_zone or self.access.time_zone

        def occurrence(original: dt.datetime | None) -> OccurrenceItemId | None:
            index = index_of(rule, first, zone, original) if original else None
            return OccurrenceItemId(id=master.id, instance_index=index) if index else None

        one = _SeriesOccurrences(position, master)
        for exception in record.exceptions:
            target = occurrence(exception.original_start)
            if target is None:
                one.problems.append(no_occurrence_at(exception.original_start))
                continue
            try:
                values = event_values(dataclasses.replace(
                    exception, recurrence=None, uid="", stamp=""), self.access.time_zone)
            except ValueError as exc:
                one.problems.append(str(exc))
                continue
            names = ["subject", "start", "end", "location", "body", "is_all_day", "sensitivity"]
            item = CalendarItem(account=self.account, **{n: values.get(n) for n in names})
            item._id = target
            one.changes.append((item, names))
        one.doomed = [t for t in map(occurrence, record.deleted_occurrences) if t is not None]
        return one

    def delete(self, kind: Kind, refs: Sequence[ItemRef]) -> list[WriteResult]:
        results: list[WriteResult] = []
        for start in range(0, len(refs), BATCH_SIZE):
            chunk = refs[start:start + BATCH_SIZE]
            with self._errors():
                answers = list(PerItemDelete(account=self.account, chunk_size=BATCH_SIZE).call(
                    items=[ItemId(r.id) for r in chunk], delete_type="MoveToDeletedItems",
                    send_meeting_cancellations="SendToNone",
                    affected_task_occurrences="AllOccurrences", suppress_read_receipts=True))
            for ref, answer in zip(chunk, answers, strict=False):
                result = _write_result(answer, ref)
                if result.status is WriteStatus.NOT_FOUND:
                    result = WriteResult(WriteStatus.OK, ref, "already gone")
                results.append(result)
        return results

    def move(self, kind: Kind, refs: Sequence[ItemRef], folder: FolderInfo) -> list[WriteResult]:
        results: list[WriteResult] = []
        target = self._folder_id(folder.id)
        for start in range(0, len(refs), BATCH_SIZE):
            chunk = refs[start:start + BATCH_SIZE]
            with self._errors():
                # No ChangeKey: a move carries the item as it is now, edits included, so an
                # edit made since the last read is no reason to refuse it.
                answers = list(PerItemMove(account=self.account, chunk_size=BATCH_SIZE).call(
                    items=[ItemId(r.id) for r in chunk], to_folder=target))
            results.extend(_write_result(answer, ref)
                           for ref, answer in zip(chunk, answers, strict=False))
            results.extend(WriteResult(WriteStatus.ERROR, ref, NO_ANSWER)
                           for ref in chunk[len(answers):])
        return results


DELETED_ALREADY = exchange_errors.ErrorCalendarOccurrenceIsDeletedFromRecurrence


def _write_result(answer: Any, ref: ItemRef | None = None) -> WriteResult:
    if answer is None:
        return WriteResult(WriteStatus.ERROR, ref, NO_ANSWER)
    if isinstance(answer, exchange_errors.ErrorIrresolvableConflict
                  | exchange_errors.ErrorInvalidChangeKey):
        return WriteResult(WriteStatus.CONFLICT, ref, CONFLICT)
    if isinstance(answer, ITEM_MISSING):
        return WriteResult(WriteStatus.NOT_FOUND, ref, GONE)
    if isinstance(answer, Exception):
        return WriteResult(WriteStatus.ERROR, ref,
                           f"{type(answer).__name__}: {short(str(answer))}")
    if isinstance(answer, BulkCreateResult | CalendarItem | Contact | Message):
        return WriteResult(WriteStatus.OK, ItemRef(answer.id, answer.changekey or ""))
    if answer is True:
        return WriteResult(WriteStatus.OK, ref)
    item_id, changekey = answer if isinstance(answer, tuple) else (None, None)
    if item_id:
        return WriteResult(WriteStatus.OK, ItemRef(item_id, changekey or ""))
    return WriteResult(WriteStatus.OK, ref)
