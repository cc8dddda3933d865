"""Reading with EWS: changes page by page (read one page ahead), items, the calendar window."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from exchangelib import CalendarItem, Message
from exchangelib import errors as exchange_errors
from exchangelib.fields import FieldPath
from exchangelib.properties import CalendarView, ItemId
from exchangelib.services import FindItem

from engine.mailbox.base import (
    BATCH_SIZE,
    ChangePage,
    ChangeType,
    Fetched,
    FolderInfo,
    ItemChange,
    ItemError,
    ItemRef,
    KnownVersions,
    LeftOut,
    MailboxError,
    Pending,
)
from engine.mailbox.events import events_of
from engine.mailbox.ews_connection import EwsConnection, EwsWorker
from engine.mailbox.ews_errors import ITEM_MISSING, folder_answers
from engine.mailbox.ews_mapping import as_ews_utc, as_utc, field_paths, to_record
from engine.mailbox.ews_services import PerItemGet, SyncFolderItemIds
from engine.mailbox.wording import GONE, short
from engine.records import EventRecord, Kind, Record, exception_view

log = logging.getLogger(__name__)

WINDOW_MAX_ITEMS = 1000   # Exchange refuses bigger calendar views (ErrorExceededFindCountLimit)
MAX_CHANGES_PER_SYNC = 512   # SyncFolderItems' MaxChangesReturned at most
WINDOW_MAX_DAYS = 700     # ... and ranges over two years (ErrorCalendarViewRangeTooBig)


class EwsReading(EwsConnection):
    """EwsMailbox's reading: changes since a sync state, items, the calendar window."""

    def read_changes(self, folder: FolderInfo, state: str | None,
                     page_size: int = BATCH_SIZE, known: KnownVersions | None = None,
                     received_after: dt.datetime | None = None) -> Iterator[ChangePage]:
        """Pages of changes, read one page ahead: while the caller works on a page (database
        writes), the next page's items are being fetched in a background thread, so the
        Exchange round trips and the caller's work overlap instead of adding up. Only the
        fetch runs there; `known` (a database query) is always asked from the caller's
        thread."""
        restarted, requested = False, page_size
        # Mail older than the import window is never fetched: the sync asks each change's
        # receipt time and subject (cheap properties) and only newer mail is read in full.
        cheap = {FieldPath(field=Message.get_field_by_fieldname(name))
                 for name in ("datetime_received", "subject")} \
            if received_after is not None else set()
        ahead = EwsWorker(self, "ews-read-ahead")
        try:
            pending: _ListedPage | None = None
            while True:
                try:
                    listed = self._list_changes(folder, state, page_size, cheap, known,
                                                received_after)
                except _SyncStateRefused:
                    log.warning("Sync state of %s refused; reading %s from scratch",
                                self.access.mailbox, folder.path)
                    state, restarted, pending = None, True, None
                    ahead.discard()
                    continue
                listed.restarted, restarted = restarted, False
                kind, refs = folder.kind, listed.to_fetch
                # A page with nothing to fetch was versions known already (a run's own
                # writes coming back): the next is asked as large as Exchange allows, since
                # only fetching items is what the page size keeps in bounds.
                page_size = requested if refs else max(requested, MAX_CHANGES_PER_SYNC)
                fetching = ahead.submit(lambda kind=kind, refs=refs: self.fetch(kind, refs)) \
                    if kind is not None and refs else None
                if pending is not None:
                    yield pending.page()
                pending = _ListedPage(listed, fetching)
                state = listed.state
                if listed.done:
                    yield pending.page()
                    return
        finally:
            ahead.close()

    def _list_changes(self, folder: FolderInfo, state: str | None, page_size: int,
                      cheap: set[Any], known: KnownVersions | None,
                      received_after: dt.datetime | None) -> _Listed:
        """One SyncFolderItems page: its deletions, the items whose version is known already,
        and the items still to fetch."""
        service = SyncFolderItemIds(account=self.account)
        try:
            with self._errors():
                raw = folder_answers(list(service.call(
                    folder=self._folder(folder), shape="IdOnly", additional_fields=cheap,
                    sync_state=state, ignore=None, max_changes_returned=page_size,
                    sync_scope="NormalItems")))
        except MailboxError as exc:
            if isinstance(exc.__cause__, exchange_errors.ErrorInvalidSyncStateData) and state:
                raise _SyncStateRefused from exc
            raise
        upserts: dict[str, ItemRef] = {}
        left_out: dict[str, LeftOut] = {}
        changes: list[ItemChange] = []
        for change_type, obj in raw:
            if change_type in ("create", "update"):
                ref = ItemRef(obj.id, obj.changekey or "")
                received = getattr(obj, "datetime_received", None)
                if received_after is not None and received is not None and \
                        as_utc(received, None) < received_after:
                    left_out[obj.id] = LeftOut(ref, getattr(obj, "subject", None) or "",
                                               as_utc(received, None))
                    continue
                upserts[obj.id] = ref
            elif change_type == "delete":
                upserts.pop(obj.id, None)
                left_out.pop(obj.id, None)
                changes.append(ItemChange(ChangeType.DELETE, ItemRef(obj.id)))
        already = known(list(upserts.values())) if known and upserts else set()
        for item_id in already:
            changes.append(ItemChange(ChangeType.UPSERT, upserts.pop(item_id)))
        return _Listed(changes, list(upserts.values()) if folder.kind is not None else [],
                       service.sync_state, bool(service.includes_last_item_in_range),
                       left_out=list(left_out.values()))

    def fetch(self, kind: Kind, refs: Sequence[ItemRef]) -> list[Fetched]:
        out: list[Fetched] = []
        fields = field_paths(kind)
        modified: dict[str, list[str]] = {}   # master id -> its exceptions' ids
        for start in range(0, len(refs), BATCH_SIZE):
            chunk = refs[start:start + BATCH_SIZE]
            with self._errors():
                results = list(PerItemGet(account=self.account, chunk_size=BATCH_SIZE).call(
                    items=[ItemId(r.id) for r in chunk], additional_fields=fields,
                    shape="IdOnly"))
            for ref, item in zip(chunk, results, strict=False):
                out.append(self._converted(ref, item))
                if isinstance(item, CalendarItem) and item.modified_occurrences:
                    modified[item.id] = [o.id for o in item.modified_occurrences]
        if modified:
            self._attach_exceptions(out, modified)
        return out

    def _attach_exceptions(self, fetched: list[Fetched], modified: dict[str, list[str]]) -> None:
        """A series is one record with its exceptions: read them all in batches."""
        wanted = [ItemRef(i) for ids in modified.values() for i in ids]
        exceptions: dict[str, EventRecord] = {}
        for result in self.fetch(Kind.CALENDAR, wanted):
            if not isinstance(result, ItemError) and isinstance(result[1], EventRecord):
                exceptions[result[0].id] = exception_view(result[1])
        for result in fetched:
            if isinstance(result, ItemError) or not isinstance(result[1], EventRecord):
                continue
            ids = modified.get(result[0].id, [])
            result[1].exceptions = sorted(
                (exceptions[i] for i in ids if i in exceptions),
                key=lambda r: r.original_start or r.start or dt.datetime.min.replace(tzinfo=dt.UTC))

    def _converted(self, ref: ItemRef, item: Any) -> tuple[ItemRef, Record] | ItemError:
        if isinstance(item, ITEM_MISSING):
            return ItemError(ref, GONE, "ErrorItemNotFound")
        if isinstance(item, Exception):
            return ItemError(ref, short(str(item)) or type(item).__name__, type(item).__name__)
        try:
            record = to_record(item, self.access.time_zone)
        except Exception as exc:   # a malformed item: reported, the others go on
            return ItemError(ref, f"The item could not be read: {short(str(exc))}",
                             type(exc).__name__)
        if record is None:
            return ItemError(ref, f"Not a supported item ({type(item).__name__})", "unsupported")
        return ItemRef(item.id, item.changekey or ""), record

    def read_window(self, folder: FolderInfo, start: dt.datetime, end: dt.datetime,
                    known: KnownVersions | None = None,
                    known_series: Callable[[list[str]], set[str]] | None = None,
                    ) -> Iterator[tuple[ItemRef, EventRecord]]:
        singles: dict[str, ItemRef] = {}
        occurrence_of: dict[str, str] = {}   # uid -> one occurrence's id (to find the master)
        occurrences: list[str] = []
        for view in self._view(folder, start, end):
            if view.type in ("Occurrence", "Exception"):
                occurrences.append(view.id)
            else:
                singles[view.id] = ItemRef(view.id, view.changekey or "")
        for item_id, uid in self._uids(occurrences).items():
            occurrence_of.setdefault(uid, item_id)
        # What the caller holds already needs no fetching (nor a master lookup).
        for item_id in known(list(singles.values())) if known and singles else set():
            singles.pop(item_id, None)
        for uid in known_series(list(occurrence_of)) if known_series and occurrence_of else set():
            occurrence_of.pop(uid, None)
        masters = self._masters(list(occurrence_of.values()))
        if known and masters:
            held = known(masters)
            masters = [m for m in masters if m.id not in held]
        yield from events_of(self.fetch(Kind.CALENDAR, [*singles.values(), *masters]))

    def _view(self, folder: FolderInfo, start: dt.datetime, end: dt.datetime) -> Iterator[Any]:
        """A CalendarView (FindItem) asking only each item's id and type, in ranges small
        enough for Exchange's limits."""
        step = dt.timedelta(days=WINDOW_MAX_DAYS)
        cursor = start
        type_field = {FieldPath(field=CalendarItem.get_field_by_fieldname("type"))}
        while cursor < end:
            until = min(end, cursor + step)
            view = CalendarView(start=as_ews_utc(cursor), end=as_ews_utc(until),
                                max_items=WINDOW_MAX_ITEMS)
            with self._errors():
                answers = folder_answers(list(
                    FindItem(account=self.account, page_size=WINDOW_MAX_ITEMS).call(
                        folders=[self._folder(folder)], additional_fields=type_field,
                        restriction=None, order_fields=None, shape="IdOnly",
                        query_string=None, depth="Shallow", calendar_view=view,
                        max_items=WINDOW_MAX_ITEMS, offset=0)))
            items = [i for i in answers if not isinstance(i, Exception)]
            if len(items) >= WINDOW_MAX_ITEMS and until - cursor > dt.timedelta(days=1):
                step = (until - cursor) / 2   # too many in this range: halve it and retry
                continue
            yield from items
            cursor = until

    def _uids(self, item_ids: list[str]) -> dict[str, str]:
        """The meeting UID of each occurrence (CalendarView cannot return it)."""
        uids: dict[str, str] = {}
        fields = {FieldPath(field=CalendarItem.get_field_by_fieldname("uid"))}
        for start in range(0, len(item_ids), BATCH_SIZE):
            with self._errors():
                for item in PerItemGet(account=self.account, chunk_size=BATCH_SIZE).call(
                        items=[ItemId(i) for i in item_ids[start:start + BATCH_SIZE]],
                        additional_fields=fields, shape="IdOnly"):
                    if not isinstance(item, Exception):
                        uids[item.id] = item.uid or item.id
        return uids

    def _masters(self, occurrence_ids: list[str]) -> list[ItemRef]:
        from exchangelib.properties import RecurringMasterItemId

        refs: list[ItemRef] = []
        for start in range(0, len(occurrence_ids), BATCH_SIZE):
            chunk = occurrence_ids[start:start + BATCH_SIZE]
            with self._errors():
                results = list(PerItemGet(account=self.account, chunk_size=BATCH_SIZE).call(
                    items=[RecurringMasterItemId(id=i) for i in chunk],
                    additional_fields=set(), shape="IdOnly"))
            refs.extend(ItemRef(r.id, r.changekey or "") for r in results
                        if not isinstance(r, Exception))
        return list(dict.fromkeys(refs))

    def find_by_stamp(self, folder: FolderInfo, stamps: Sequence[str]) -> dict[str, ItemRef]:
        found: dict[str, ItemRef] = {}
        wanted = list(dict.fromkeys(s for s in stamps if s))
        for start in range(0, len(wanted), 50):
            chunk = wanted[start:start + 50]
            with self._errors():
                items = list(self._folder(folder).filter(sync_stamp__in=chunk).only("sync_stamp"))
            for item in items:
                found.setdefault(item.sync_stamp, ItemRef(item.id, item.changekey or ""))
        return found


class _SyncStateRefused(Exception):
    """Exchange no longer knows a stored sync state: the folder is read from scratch."""


@dataclasses.dataclass
class _Listed:
    """One SyncFolderItems page before its items are fetched."""

    changes: list[ItemChange]   # deletions, and items whose version is known already
    to_fetch: list[ItemRef]
    state: str
    done: bool
    restarted: bool = False
    left_out: list[LeftOut] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _ListedPage:
    listed: _Listed
    fetching: Pending[list[Fetched]] | None

    def page(self) -> ChangePage:
        changes, errors = list(self.listed.changes), []
        for result in self.fetching.result() if self.fetching is not None else []:
            if isinstance(result, ItemError):
                if result.code == "ErrorItemNotFound" and result.ref is not None:
                    # Created and deleted again between the two requests.
                    changes.append(ItemChange(ChangeType.DELETE, result.ref))
                else:
                    errors.append(result)
            else:
                ref, record = result
                changes.append(ItemChange(ChangeType.UPSERT, ref, record))
        listed = self.listed
        return ChangePage(changes=changes, errors=errors, state=listed.state, done=listed.done,
                          restarted=listed.restarted, left_out=listed.left_out)
