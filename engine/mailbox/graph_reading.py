"""Reading with Graph: delta pages, items fetched in `$batch`es, series and the calendar window."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from typing import Any
from urllib.parse import quote

from engine import recurrence
from engine.mailbox import graph_mapping as m
from engine.mailbox.base import (
    ATTACHMENT_BATCH_BYTES,
    BATCH_SIZE,
    SMALL_ATTACHMENT_BYTES,
    ChangePage,
    ChangeType,
    Fetched,
    FolderInfo,
    FolderNotFound,
    ItemChange,
    ItemError,
    ItemRef,
    KnownVersions,
    MailboxError,
)
from engine.mailbox.events import events_of
from engine.mailbox.graph_connection import EVENTS_PREFER, GraphConnection, quoted
from engine.mailbox.graph_errors import GraphError, translate
from engine.mailbox.graph_http import IMMUTABLE_IDS, BatchRequest, BatchResult, chunked
from engine.mailbox.graph_state import DeltaState, short_id
from engine.mailbox.wording import GONE, folder_gone
from engine.records import ContactRecord, EventRecord, Kind, Record, RecurrenceRule, exception_view

log = logging.getLogger(__name__)


# The calendar delta's window reaches this far beyond the profile's on both sides: a new
# round (a full read, matched, not duplicated) only when the profile's window has left it.
WINDOW_MARGIN_DAYS = 30
CONTACT_EXPAND = m.expand_properties(m.CONTACT_PROPERTIES)
ITEM_EXPAND = m.expand_properties(m.ITEM_PROPERTIES)
MESSAGE_EXPAND = f"attachments($select={m.ATTACHMENT_SELECT}),{ITEM_EXPAND}"
FETCH_QUERY = {
    Kind.CONTACTS: f"$select={m.CONTACT_SELECT}&$expand={CONTACT_EXPAND}",
    Kind.CALENDAR: f"$select={m.EVENT_SELECT}&$expand={ITEM_EXPAND}",
    Kind.MAIL: f"$select={m.MESSAGE_SELECT}&$expand={MESSAGE_EXPAND}",
}
# Mail: the delta listing names each message's attachments with their sizes (message delta
# takes $select, $top and $expand: learn.microsoft.com/graph/api/message-delta, "OData query
# parameters"), so a message whose attachments are all small is fetched with their contents
# in the same `$batch` operation: `$expand=attachments` without a $select gives them as
# message-list-attachments lists them, each fileAttachment with its contentBytes
# (learn.microsoft.com/graph/api/message-list-attachments,
# learn.microsoft.com/graph/api/resources/fileattachment). One operation per
# message instead of one per attachment; a message with a large one keeps the reading of
# each attachment on its own (GraphAttachments), the large ones streamed.
LISTED_ATTACHMENTS = "attachments($select=id,size)"
WITH_CONTENTS_QUERY = f"$select={m.MESSAGE_SELECT}&$expand=attachments,{ITEM_EXPAND}"
# What the contents read with one page's messages may add up to: they are held until the
# import has saved that page's attachments. As on EWS, where the import holds two groups of
# ATTACHMENT_BATCH_BYTES (the one being saved, the next one being read); the messages of a
# page beyond it have their small attachments read on their own, 20 to a `$batch`.
READ_AHEAD_BYTES = 2 * ATTACHMENT_BATCH_BYTES


def with_small_attachments(refs: dict[str, ItemRef], sizes: dict[str, list[int]]) -> set[str]:
    """The messages to fetch with their attachments' contents: those with attachments, all
    of them small, in order as far as READ_AHEAD_BYTES goes."""
    chosen: set[str] = set()
    total = 0
    for item_id in refs:
        listed = sizes.get(item_id)
        if not listed or max(listed) > SMALL_ATTACHMENT_BYTES \
                or total + sum(listed) > READ_AHEAD_BYTES:
            continue
        chosen.add(item_id)
        total += sum(listed)
    return chosen


class GraphReading(GraphConnection):
    """GraphMailbox's reading: delta pages, items, series, the calendar window."""

    def _window(self) -> tuple[dt.datetime, dt.datetime]:
        """The profile's calendar window, widened by the margin."""
        today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return (today - dt.timedelta(days=self.access.calendar_days_past + WINDOW_MARGIN_DAYS),
                today + dt.timedelta(days=self.access.calendar_days_future + 1
                                     + WINDOW_MARGIN_DAYS))

    def _first_link(self, folder: FolderInfo, page_size: int,
                    received_after: dt.datetime | None) -> tuple[str, tuple[str, str] | None]:
        user = self.client.user
        if folder.kind is Kind.CALENDAR:
            start, end = self._window()
            window = (m.format_time(start), m.format_time(end))
            return (f"{user}/calendars/{quoted(folder.id)}/calendarView/delta?"
                    f"startDateTime={window[0]}&endDateTime={window[1]}"), window
        if folder.kind is Kind.CONTACTS:
            return (f"{user}/contactFolders/{quoted(folder.id)}/contacts/delta"
                    "?$select=id,changeKey"), None
        link = f"{user}/mailFolders/{quoted(folder.id)}/messages/delta?" \
            f"$select=id,changeKey,receivedDateTime&$expand={quote(LISTED_ATTACHMENTS)}"
        if received_after is not None:
            link += f"&$filter=receivedDateTime+ge+{m.format_time(received_after)}"
        return link, None

    def _window_moved(self, state: DeltaState) -> bool:
        if state.window is None:
            return False
        wanted_start, wanted_end = self._window()
        margin = dt.timedelta(days=WINDOW_MARGIN_DAYS)
        start, end = (m.parse_time(v) for v in state.window)
        if start is None or end is None:
            return True   # a window this backend cannot read: a new round reads it afresh
        return wanted_start + margin < start or wanted_end - margin > end

    def read_changes(self, folder: FolderInfo, state: str | None,
                     page_size: int = BATCH_SIZE, known: KnownVersions | None = None,
                     received_after: dt.datetime | None = None) -> Iterator[ChangePage]:
        if folder.kind is None:
            raise FolderNotFound(f"The folder {folder.path!r} holds no items this server syncs.")
        current = DeltaState.load(state)
        restarted = state is not None and current is None
        if restarted:
            log.warning("Sync state of %s not a Graph delta link; reading %s from scratch",
                        self.access.mailbox, folder.path)
        if current is not None and self._window_moved(current):
            current, restarted = None, True
        prefer = f"{IMMUTABLE_IDS}, odata.maxpagesize={page_size}"
        if folder.kind is Kind.CALENDAR:
            prefer = f"{EVENTS_PREFER}, odata.maxpagesize={page_size}"
        while True:
            if current is None:
                link, window = self._first_link(folder, page_size, received_after)
                current = DeltaState(link, window)
            try:
                answer = self.client.call("GET", current.link, prefer=prefer)
            except GraphError as exc:
                if exc.status == 404 and exc.code != "SyncStateNotFound":
                    raise folder_gone() from exc
                if exc.status in (400, 410) and not restarted and state:
                    # 410 SyncStateNotFound: expired (or another mailbox's) delta token.
                    log.warning("Delta link of %s refused (%s); reading %s from scratch",
                                self.access.mailbox, exc.code, folder.path)
                    current, restarted = None, True
                    continue
                raise translate(exc, self.access) from exc
            except MailboxError:
                raise
            except Exception as exc:
                raise translate(exc, self.access) from exc
            next_link = answer.get("@odata.nextLink")
            done = next_link is None
            following = dataclasses.replace(
                current, link=next_link or answer.get("@odata.deltaLink") or current.link,
                masters=dict(current.masters), given=list(current.given),
                singles=list(current.singles), occurrences_removed=current.occurrences_removed)
            if folder.kind is Kind.CALENDAR:
                changes, errors = self._calendar_page(folder, answer.get("value") or [],
                                                      following, known, done)
            else:
                changes, errors = self._item_page(folder.kind, answer.get("value") or [], known,
                                                  received_after)
            if done:
                following.given = []
            yield ChangePage(changes, errors, following.dump(), done, restarted)
            restarted, state = False, following.dump()
            current = following
            if done:
                return

    def _item_page(self, kind: Kind, values: list[dict[str, Any]], known: KnownVersions | None,
                   received_after: dt.datetime | None) -> tuple[list[ItemChange], list[ItemError]]:
        upserts: dict[str, ItemRef] = {}
        changes: list[ItemChange] = []
        sizes: dict[str, list[int]] = {}   # mail: each message's attachments, as listed
        for value in values:
            item_id = str(value.get("id") or "")
            if not item_id:
                continue
            if "@removed" in value:
                upserts.pop(item_id, None)
                changes.append(ItemChange(ChangeType.DELETE, ItemRef(item_id)))
                continue
            received = m.parse_time(value.get("receivedDateTime"))
            if received_after is not None and received is not None and received < received_after:
                continue
            upserts[item_id] = ItemRef(item_id, str(value.get("changeKey") or ""))
            if isinstance(value.get("attachments"), list):
                sizes[item_id] = [int(a.get("size") or 0) for a in value["attachments"]]
        if kind is Kind.MAIL:
            self._read_ahead = {}   # the page before is done with: its contents go
        return self._with_records(kind, changes, upserts, known, sizes)

    def _with_records(self, kind: Kind, changes: list[ItemChange], upserts: dict[str, ItemRef],
                      known: KnownVersions | None, sizes: dict[str, list[int]] | None = None
                      ) -> tuple[list[ItemChange], list[ItemError]]:
        already = known(list(upserts.values())) if known and upserts else set()
        for item_id in already:
            if item_id in upserts:
                changes.append(ItemChange(ChangeType.UPSERT, upserts.pop(item_id)))
        errors: list[ItemError] = []
        with_contents = with_small_attachments(upserts, sizes or {})
        for result in self._fetch(kind, list(upserts.values()), with_contents):
            if isinstance(result, ItemError):
                if result.code == "ErrorItemNotFound" and result.ref is not None:
                    changes.append(ItemChange(ChangeType.DELETE, result.ref))  # gone meanwhile
                else:
                    errors.append(result)
            else:
                changes.append(ItemChange(ChangeType.UPSERT, result[0], result[1]))
        return changes, errors

    def _calendar_page(self, folder: FolderInfo, values: list[dict[str, Any]], state: DeltaState,
                       known: KnownVersions | None, done: bool
                       ) -> tuple[list[ItemChange], list[ItemError]]:
        """Instances -> singles and their series' masters (each once per round)."""
        changes: list[ItemChange] = []
        upserts: dict[str, ItemRef] = {}
        masters: list[str] = []
        given = set(state.given)
        singles = set(state.singles)
        for value in values:
            item_id = str(value.get("id") or "")
            if "@removed" in value:
                if short_id(item_id) in singles:
                    singles.discard(short_id(item_id))
                    upserts.pop(item_id, None)
                    changes.append(ItemChange(ChangeType.DELETE, ItemRef(item_id)))
                else:   # an occurrence: its series is looked at by the series check
                    state.occurrences_removed = True
                continue
            kind = value.get("type") or "singleInstance"
            if kind == "singleInstance":
                singles.add(short_id(item_id))
                upserts[item_id] = ItemRef(item_id, str(value.get("changeKey") or ""))
                continue
            master = str(value.get("seriesMasterId") or item_id)
            if short_id(master) not in given and master not in masters:
                masters.append(master)
        for ref in self._master_refs(masters, known is not None):
            given.add(short_id(ref.id))
            upserts[ref.id] = ref
        changes, errors = self._with_records(Kind.CALENDAR, changes, upserts, known)
        wanted = set(masters)
        for change in changes:
            if change.type is ChangeType.UPSERT and change.ref.id in wanted:
                state.masters[change.ref.id] = change.ref.version
        state.given = sorted(given)
        state.singles = sorted(singles)
        if done and state.occurrences_removed:
            changes += self._series_check(folder, state)
            state.occurrences_removed = False
        return changes, errors

    def _master_refs(self, masters: list[str], versions: bool) -> list[ItemRef]:
        """The series masters as refs; with their versions when the caller may hold them
        (its own writes: neither the master nor its instances are then fetched)."""
        if not versions or not masters:
            return [ItemRef(i) for i in masters]
        heads = self._batch([BatchRequest("GET", self._item_url(
            Kind.CALENDAR, i, "?$select=id,changeKey")) for i in masters], EVENTS_PREFER)
        return [ItemRef(i, str(a.body.get("changeKey") or "")) if a.ok
                and isinstance(a.body, dict) else ItemRef(i) for i, a in zip(
                    masters, heads, strict=True)]

    def _series_check(self, folder: FolderInfo, state: DeltaState) -> list[ItemChange]:
        """The masters seen before, compared with the calendar's: gone ones are DELETEs,
        changed ones (an occurrence deleted, say) come again."""
        if not state.masters:
            return []
        present: dict[str, str] = {}
        with self._errors():
            for page in self.client.pages(
                    f"{self.client.user}/calendars/{quoted(folder.id)}/events",
                    {"$select": "id,changeKey,type", "$top": 500}, prefer=EVENTS_PREFER):
                for value in page.get("value") or []:
                    # Singles come too: filtered here ($filter on type is not documented).
                    if value.get("type") == "seriesMaster":
                        present[str(value["id"])] = str(value.get("changeKey") or "")
        changes: list[ItemChange] = []
        changed: list[ItemRef] = []
        for master_id, version in list(state.masters.items()):
            if master_id not in present:
                del state.masters[master_id]
                changes.append(ItemChange(ChangeType.DELETE, ItemRef(master_id)))
            elif present[master_id] != version and short_id(master_id) not in state.given:
                changed.append(ItemRef(master_id, present[master_id]))
        for result in self.fetch(Kind.CALENDAR, changed):
            if not isinstance(result, ItemError):
                state.masters[result[0].id] = result[0].version
                changes.append(ItemChange(ChangeType.UPSERT, result[0], result[1]))
        return changes

    def fetch(self, kind: Kind, refs: Sequence[ItemRef]) -> list[Fetched]:
        return self._fetch(kind, refs, set())

    def _fetch(self, kind: Kind, refs: Sequence[ItemRef], with_contents: set[str]
               ) -> list[Fetched]:
        """`with_contents`: messages whose attachments come along, their contents kept for
        `read_attachments`."""
        if not refs:
            return []
        prefer = EVENTS_PREFER if kind is Kind.CALENDAR else \
            f'{IMMUTABLE_IDS}, outlook.body-content-type="html"'
        requests = [BatchRequest("GET", f"{self._item_url(kind, r.id)}?" + (
            WITH_CONTENTS_QUERY if r.id in with_contents else FETCH_QUERY[kind])) for r in refs]
        if with_contents:
            answers = self._with_contents(refs, requests, with_contents, prefer)
        else:
            answers = self._batch(requests, prefer)
        out: list[Fetched] = []
        pictured: set[str] = set()   # contacts Outlook flags as having a photo
        for ref, answer in zip(refs, answers, strict=True):
            out.append(self._converted(kind, ref, answer))
            if kind is Kind.CONTACTS and answer.ok and isinstance(answer.body, dict) \
                    and m.has_picture(answer.body):
                pictured.add(ref.id)
        if pictured:
            self._photo_tokens([r for r, ref in zip(out, refs, strict=True)
                                if ref.id in pictured])
        if kind is Kind.CALENDAR:
            self._series_details(out)
        return out

    def _converted(self, kind: Kind, ref: ItemRef, answer: BatchResult) -> Fetched:
        if answer.missing:
            return ItemError(ref, GONE, "ErrorItemNotFound")
        if not answer.ok:
            error = answer.error()
            return ItemError(ref, f"{error.code}: {error.message}".strip(": "), error.code)
        item = answer.body or {}
        try:
            record: Record
            if kind is Kind.CONTACTS:
                record = m.contact_record(item)
            elif kind is Kind.CALENDAR:
                record = m.event_record(item, self.access.time_zone)
            else:
                record = m.message_record(item)
        except (ValueError, TypeError, KeyError) as exc:   # a malformed item: reported alone
            return ItemError(ref, f"The item could not be read: {exc}", type(exc).__name__)
        return ItemRef(str(item.get("id") or ref.id), str(item.get("changeKey") or "")), record

    def _with_contents(self, refs: Sequence[ItemRef], requests: list[BatchRequest],
                       with_contents: set[str], prefer: str) -> list[BatchResult]:
        """One `$batch` at a time, the attachments' contents of each decoded and taken out
        of its answer before the next is sent: four under way at once would hold four
        answers' base64 text, and the memory of a page's read grew with it."""
        answers: list[BatchResult] = []
        for chunk in chunked(range(len(refs))):
            got = self._batch([requests[i] for i in chunk], prefer)
            for i, answer in zip(chunk, got, strict=True):
                if refs[i].id in with_contents and answer.ok:
                    self._keep_contents(refs[i].id, answer)
            answers += got
        return answers

    def _keep_contents(self, item_id: str, answer: BatchResult) -> None:
        """A message's attachment contents as fetched with it, for `read_attachments`; one
        that cannot be decoded is left out (read on its own then, its error told there)."""
        if not isinstance(answer.body, dict):
            return
        item_id = str(answer.body.get("id") or item_id)
        for value in answer.body.get("attachments") or []:
            # Taken out of the answer, so that only the decoded bytes stay.
            encoded = value.pop("contentBytes", None)
            if encoded is None or "id" not in value:
                continue   # an attached item: written as MIME on its own
            with suppress(binascii.Error, TypeError):
                self._read_ahead[(item_id, str(value["id"]))] = base64.b64decode(
                    encoded or "", validate=True)

    def _photo_tokens(self, fetched: list[Fetched]) -> None:
        """A contact with a photo gets its photo's ETag as token (one request per 20 of
        them; contacts without the PidLidHasPicture flag cost none)."""
        with_photo: list[tuple[ItemRef, ContactRecord]] = []
        for result in fetched:
            if not isinstance(result, ItemError) and isinstance(result[1], ContactRecord):
                with_photo.append((result[0], result[1]))
        answers = self._batch([BatchRequest("GET", self._item_url(Kind.CONTACTS, ref.id,
                                                                  "/photo"))
                               for ref, _ in with_photo])
        for (_, record), answer in zip(with_photo, answers, strict=True):
            if answer.ok and isinstance(answer.body, dict):
                record.photo_token = str(answer.body.get("@odata.mediaEtag")
                                         or answer.body.get("id") or "photo")

    def _series_details(self, fetched: list[Fetched]) -> None:
        """Each master's exceptions and deleted occurrences, from its instances."""
        masters: list[tuple[ItemRef, EventRecord, RecurrenceRule, dt.datetime]] = []
        for result in fetched:
            if isinstance(result, ItemError):
                continue
            ref, record = result
            if isinstance(record, EventRecord) and record.kind == "master" \
                    and record.recurrence is not None and record.start is not None:
                masters.append((ref, record, record.recurrence, record.start))
        requests = []
        spans = []
        for ref, record, rule, first in masters:
            zone = record.time_zone or self.access.time_zone
            last = recurrence.last_start(rule, first, zone)
            duration = (record.end - first) if record.end else dt.timedelta(0)
            span = (first - dt.timedelta(days=1), last + duration + dt.timedelta(days=1))
            spans.append((span, zone))
            requests.append(BatchRequest(
                "GET", f"{self._item_url(Kind.CALENDAR, ref.id, '/instances')}?"
                f"startDateTime={m.format_time(span[0])}&endDateTime={m.format_time(span[1])}"
                f"&$select={m.EVENT_SELECT}&$top=1000"))
        answers = self._batch(requests, EVENTS_PREFER)
        for (ref, record, rule, first), answer, (span, zone) in zip(masters, answers, spans,
                                                                    strict=True):
            if not answer.ok:
                log.warning("Instances of series %s not read: %s", ref.id, answer.status)
                continue
            instances = [m.event_record(v, self.access.time_zone)
                         for v in (answer.body or {}).get("value") or []]
            originals = {(i.original_start or i.start) for i in instances}
            record.exceptions = sorted(
                (exception_view(i) for i in instances if i.kind == "exception"),
                key=lambda e: e.original_start or e.start or span[0])
            record.deleted_occurrences = tuple(
                start for _, start in recurrence.occurrences(rule, first, zone, until=span[1])
                if start not in originals)

    def read_window(self, folder: FolderInfo, start: dt.datetime, end: dt.datetime,
                    known: KnownVersions | None = None,
                    known_series: Callable[[list[str]], set[str]] | None = None,
                    ) -> Iterator[tuple[ItemRef, EventRecord]]:
        singles: dict[str, ItemRef] = {}
        master_ids: dict[str, None] = {}
        with self._errors():
            for page in self.client.pages(
                    f"{self.client.user}/calendars/{quoted(folder.id)}/calendarView",
                    {"startDateTime": m.format_time(start), "endDateTime": m.format_time(end),
                     "$select": "id,changeKey,type,seriesMasterId", "$top": 500},
                    prefer=EVENTS_PREFER):
                for value in page.get("value") or []:
                    if (value.get("type") or "singleInstance") == "singleInstance":
                        singles[value["id"]] = ItemRef(value["id"], value.get("changeKey") or "")
                    elif value.get("seriesMasterId"):
                        master_ids.setdefault(value["seriesMasterId"])
        for item_id in known(list(singles.values())) if known and singles else set():
            singles.pop(item_id, None)
        # An occurrence's iCalUId is its own: the series' UID and version are the master's.
        masters: list[ItemRef] = []
        uids: dict[str, str] = {}
        heads = self._batch([BatchRequest("GET", self._item_url(
            Kind.CALENDAR, i, "?$select=id,changeKey,iCalUId")) for i in master_ids],
            EVENTS_PREFER)
        for answer in heads:
            if answer.ok and isinstance(answer.body, dict):
                ref = ItemRef(answer.body["id"], answer.body.get("changeKey") or "")
                masters.append(ref)
                uids[ref.id] = answer.body.get("iCalUId") or ref.id
        held = known_series(list(uids.values())) if known_series and uids else set()
        masters = [r for r in masters if uids[r.id] not in held]
        if known and masters:
            mine = known(masters)
            masters = [r for r in masters if r.id not in mine]
        yield from events_of(self.fetch(Kind.CALENDAR, [*singles.values(), *masters]))

    def find_by_stamp(self, folder: FolderInfo, stamps: Sequence[str]) -> dict[str, ItemRef]:
        wanted = list(dict.fromkeys(s for s in stamps if s))
        if folder.kind is Kind.CALENDAR:
            base = f"{self.client.user}/calendars/{quoted(folder.id)}/events"
        elif folder.kind is Kind.CONTACTS:
            base = f"{self.client.user}/contactFolders/{quoted(folder.id)}/contacts"
        else:
            base = f"{self.client.user}/mailFolders/{quoted(folder.id)}/messages"
        requests = [BatchRequest("GET", f"{base}?$filter={quote(m.stamp_filter(s))}"
                                 f"&$select=id,changeKey&$expand={quote(ITEM_EXPAND)}&$top=10")
                    for s in wanted]
        found: dict[str, ItemRef] = {}
        for stamp, answer in zip(wanted, self._batch(requests), strict=True):
            if not answer.ok:
                raise translate(answer.error(), self.access)
            for value in (answer.body or {}).get("value") or []:
                found.setdefault(stamp, ItemRef(value["id"], value.get("changeKey") or ""))
        return found
