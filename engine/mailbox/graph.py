"""Exchange Online through Microsoft Graph v1.0: the second `MailboxBackend`.

Same records, same promises as the EWS backend (tests/engine/mailbox/contract.py runs on
both); how Graph gets there:
- ids are immutable (`Prefer: IdType="ImmutableId"`), so an item keeps its id when moved;
- changes come from delta queries, checkpointed page by page: the stored state is the
  page's `@odata.nextLink` (inside a round) or `@odata.deltaLink` (after it). A link Graph no
  longer knows (410) restarts the read from scratch, marked `restarted` so the engine matches
  instead of creating. Delta lists only ids and versions; records are then fetched in
  `$batch`es, four at a time at most (Graph's limit per mailbox);
- contacts and mail: a delta per folder. Calendar: Graph v1.0 has only calendarView delta, a
  delta of the occurrences over a date window (the profile's, with a margin, so that the
  daily move of the window does not start a new round every day). Occurrences lead to their
  series master, read once per round with its exceptions and deleted occurrences (from the
  series' instances). A series deleted or moved away shows only as removed occurrences: a
  round that removed any ends by comparing the calendar's series masters with those it has
  seen;
- writes go in `$batch`es of 20 with a result per item; a stale `changeKey` (If-Match) is a
  CONFLICT; the identity stamp is a single-value extended property. Attendees are never
  written: Graph has no SendToNone and mails invitations for any event written with
  attendees (the engine keeps attendees Exchange -> CRM only anyway; a written record's
  attendees are reported in its result's message);
- attachments stream from `/$value` in chunks.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, BinaryIO
from urllib.parse import quote

from engine import recurrence
from engine.mailbox import graph_mapping as m
from engine.mailbox.base import (
    BATCH_SIZE,
    Category,
    ChangePage,
    ChangeType,
    Fetched,
    FolderInfo,
    FolderNotFound,
    ItemChange,
    ItemError,
    ItemRef,
    KnownVersions,
    Located,
    MailboxAccess,
    MailboxBackend,
    MailboxError,
    Pending,
    ServerInfo,
    Sought,
    Update,
    WriteResult,
    WriteStatus,
    server_stream,
)
from engine.mailbox.category_list import by_name
from engine.mailbox.graph_http import (
    CHUNK,
    CONCURRENCY,
    IMMUTABLE_IDS,
    BatchRequest,
    BatchResult,
    Budget,
    GraphClient,
    GraphError,
    chunked,
    translate,
)
from engine.records import (
    ContactRecord,
    EventRecord,
    Kind,
    MessageRecord,
    Record,
    exception_view,
)

log = logging.getLogger(__name__)

VERSION = "Microsoft Graph v1.0"
EVENTS_PREFER = f'{IMMUTABLE_IDS}, outlook.timezone="UTC", outlook.body-content-type="text"'
MAIL_WELL_KNOWN = {"inbox", "deleteditems", "sentitems", "drafts", "msgfolderroot", "junkemail",
                   "outbox", "archive"}
# The calendar delta's window reaches this far beyond the profile's on both sides: a new
# round (a full read, matched, not duplicated) only when the profile's window has left it.
WINDOW_MARGIN_DAYS = 30
STATE_PREFIX = "graph1:"

CONTACT_EXPAND = m.expand_properties(m.CONTACT_PROPERTIES)
ITEM_EXPAND = m.expand_properties(m.ITEM_PROPERTIES)
MESSAGE_EXPAND = f"attachments($select={m.ATTACHMENT_SELECT}),{ITEM_EXPAND}"
ITEM_PATHS = {Kind.CONTACTS: "contacts", Kind.CALENDAR: "events", Kind.MAIL: "messages"}
FETCH_QUERY = {
    Kind.CONTACTS: f"$select={m.CONTACT_SELECT}&$expand={CONTACT_EXPAND}",
    Kind.CALENDAR: f"$select={m.EVENT_SELECT}&$expand={ITEM_EXPAND}",
    Kind.MAIL: f"$select={m.MESSAGE_SELECT}&$expand={MESSAGE_EXPAND}",
}
CONFLICT = "Changed in Exchange since it was read; it will be merged next time."
GONE = "The item is not in the mailbox any more."


def _q(value: str) -> str:
    return quote(value, safe="")


# --- sync states ----------------------------------------------------------------------------
@dataclasses.dataclass
class _State:
    """What a stored state holds: the delta link, and for calendars the round's window, the
    series masters seen (id -> changeKey) and those already given out in this round."""

    link: str
    window: tuple[str, str] | None = None
    masters: dict[str, str] = dataclasses.field(default_factory=dict)
    given: list[str] = dataclasses.field(default_factory=list)
    # Short hashes of the single events seen: a removed instance is a deletion only if it
    # was one (a removed occurrence is its series' change, found by the series check).
    singles: list[str] = dataclasses.field(default_factory=list)
    # Whether this round removed an instance that was no single event (an occurrence): only
    # then can a series have changed or gone unseen, and the round end with the series check.
    occurrences_removed: bool = False

    def dump(self) -> str:
        data: dict[str, Any] = {"link": self.link}
        if self.window is not None:
            data.update(window=list(self.window), masters=self.masters, given=self.given,
                        singles=self.singles, occurrences_removed=self.occurrences_removed)
        return STATE_PREFIX + base64.urlsafe_b64encode(
            json.dumps(data, separators=(",", ":")).encode()).decode()

    @classmethod
    def load(cls, text: str | None) -> _State | None:
        """None for no state or one this backend did not write (an EWS state, garbage)."""
        if not text or not text.startswith(STATE_PREFIX):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(text[len(STATE_PREFIX):]))
            window = tuple(data["window"]) if data.get("window") else None
            return cls(str(data["link"]), window,  # type: ignore[arg-type]
                       dict(data.get("masters") or {}), list(data.get("given") or []),
                       list(data.get("singles") or []),
                       bool(data.get("occurrences_removed", True)))
        except (ValueError, KeyError, TypeError):
            return None


def _short_id(item_id: str) -> str:
    return hashlib.sha1(item_id.encode()).hexdigest()[:12]


# --- the backend ----------------------------------------------------------------------------
class GraphMailbox(MailboxBackend):
    ids_survive_moves = True   # immutable ids (Prefer: IdType="ImmutableId")

    def __init__(self, access: MailboxAccess) -> None:
        super().__init__(access)
        self.budget = Budget(access.throttle_budget_seconds)
        self._client: GraphClient | None = None
        self._client_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._background: ThreadPoolExecutor | None = None
        self._folder_cache: dict[tuple[Kind, str], dict[str, Any]] = {}
        self._places: dict[str, tuple[str, bool]] = {}   # _where

    # plumbing
    @property
    def client(self) -> GraphClient:
        with self._client_lock:
            if self._client is None:
                self._client = GraphClient(self.access, self.budget)
            return self._client

    @property
    def requests_made(self) -> int:
        return self._client.requests if self._client is not None else 0

    def close(self) -> None:
        for pool in (self._background, self._pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self._background = self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def start(self, call: Callable[[], Any]) -> Pending[Any]:
        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=1,
                                                  thread_name_prefix="graph-behind")
        return _Background(self._background.submit(call))

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except MailboxError:
            raise
        except Exception as exc:
            raise translate(exc, self.access) from exc

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._errors():
            return self.client.call(method, self.client.user + path, **kwargs)

    def _batch(self, requests: Sequence[BatchRequest], prefer: str = IMMUTABLE_IDS
               ) -> list[BatchResult]:
        """`$batch`es of 20, up to four of them under way at once (the mailbox's limit)."""
        chunks = list(chunked(requests))
        with self._errors():
            if len(chunks) <= 1:
                return self.client.batch(requests, prefer) if requests else []
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=CONCURRENCY,
                                                thread_name_prefix="graph-batch")
            futures = [self._pool.submit(self.client.batch, chunk, prefer) for chunk in chunks]
            return [result for future in futures for result in future.result()]

    def _item_url(self, kind: Kind, item_id: str, suffix: str = "") -> str:
        return f"{self.client.user}/{ITEM_PATHS[kind]}/{_q(item_id)}{suffix}"

    # connection and folders
    def check(self) -> ServerInfo:
        # Opening the mailbox's top folder proves the token, the consent and the mailbox.
        self._call("GET", "/mailFolders/msgfolderroot", params={"$select": "id"})
        return ServerInfo(version=VERSION, mailbox=self.access.mailbox)

    def _get_folder_json(self, kind: Kind, folder_id: str) -> dict[str, Any]:
        key = (kind, folder_id)
        if key in self._folder_cache:
            return self._folder_cache[key]
        if kind is Kind.CALENDAR:
            path = "/calendar" if folder_id.lower() == "calendar" else f"/calendars/{_q(folder_id)}"
            select = "id,name"
        elif kind is Kind.CONTACTS:
            path, select = f"/contactFolders/{_q(folder_id)}", "id,displayName,parentFolderId"
        else:
            path = f"/mailFolders/{_q(folder_id)}"
            select = "id,displayName,parentFolderId,totalItemCount"
        try:
            found = self._call("GET", path, params={"$select": select})
        except MailboxError as exc:
            cause = exc.__cause__
            if isinstance(cause, GraphError) and cause.status in (400, 404):
                raise FolderNotFound(
                    "The folder no longer exists in the mailbox: choose it again.") from exc
            raise
        self._folder_cache[key] = self._folder_cache[(kind, str(found.get("id")))] = found
        return found

    def get_folder(self, folder_id: str, kind: Kind) -> FolderInfo:
        found = self._get_folder_json(kind, folder_id)
        if kind is Kind.CALENDAR:
            default = self._get_folder_json(kind, "calendar")
            if found["id"] == default["id"]:
                return FolderInfo(found["id"], found.get("name") or "Calendar", kind)
            return FolderInfo(found["id"], f"{default.get('name') or 'Calendar'}/"
                              f"{found.get('name') or ''}", kind, parent_id=default["id"])
        names = [found.get("displayName") or ""]
        if kind is Kind.CONTACTS:
            top = self._get_folder_json(kind, "contacts")["id"]
            parent = found.get("parentFolderId") if found["id"] != top else None
            while parent and len(names) < 64:
                above = self._get_folder_json(kind, parent)
                names.append(above.get("displayName") or "")
                parent = above.get("parentFolderId") if above["id"] != top else None
        else:
            top = self._get_folder_json(kind, "msgfolderroot")["id"]
            parent = found.get("parentFolderId")
            while parent and parent != top and len(names) < 64:
                above = self._get_folder_json(kind, parent)
                names.append(above.get("displayName") or "")
                parent = above.get("parentFolderId")
        total = found.get("totalItemCount")
        return FolderInfo(found["id"], "/".join(reversed(names)), kind,
                          parent_id=found.get("parentFolderId") or "",
                          total=int(total) if isinstance(total, int) else None)

    def list_folders(self, kind: Kind) -> list[FolderInfo]:
        result: list[FolderInfo] = []
        if kind is Kind.CALENDAR:
            default = self._get_folder_json(kind, "calendar")
            name = default.get("name") or "Calendar"
            with self._errors():
                for page in self.client.pages(f"{self.client.user}/calendars",
                                              {"$select": "id,name", "$top": 100}):
                    for calendar in page.get("value") or []:
                        if calendar["id"] == default["id"]:
                            result.append(FolderInfo(calendar["id"], name, kind))
                        else:
                            result.append(FolderInfo(calendar["id"],
                                                     f"{name}/{calendar.get('name') or ''}", kind,
                                                     parent_id=default["id"]))
            return sorted(result, key=lambda f: f.path.lower())
        if kind is Kind.CONTACTS:
            top = self._get_folder_json(kind, "contacts")
            result.append(FolderInfo(top["id"], top.get("displayName") or "Contacts", kind,
                                     parent_id=top.get("parentFolderId") or ""))
            base, children = "/contactFolders", [(top["id"], result[0].path)]
            select = "id,displayName,parentFolderId"
        else:
            root = self._get_folder_json(kind, "msgfolderroot")
            base, children = "/mailFolders", [(root["id"], "")]
            select = "id,displayName,parentFolderId,totalItemCount,childFolderCount"
        while children:
            parent_id, parent_path = children.pop()
            with self._errors():
                for page in self.client.pages(
                        f"{self.client.user}{base}/{_q(parent_id)}/childFolders",
                        {"$select": select, "$top": 100}):
                    for folder in page.get("value") or []:
                        path = f"{parent_path}/{folder.get('displayName') or ''}".lstrip("/")
                        total = folder.get("totalItemCount")
                        result.append(FolderInfo(folder["id"], path, kind,
                                                 parent_id=folder.get("parentFolderId") or "",
                                                 total=total if isinstance(total, int) else None))
                        if folder.get("childFolderCount", 1):
                            children.append((folder["id"], path))
        return sorted(result, key=lambda f: f.path.lower())

    def categories(self) -> list[Category]:
        """The master category list (`/outlook/masterCategories`). Reading it needs the
        application permission MailboxSettings.Read, which the sync itself does not: an app
        without it is told so rather than sent to look for a consent it has."""
        found: list[Category] = []
        try:
            with self._errors():
                for page in self.client.pages(f"{self.client.user}/outlook/masterCategories"):
                    for entry in page.get("value") or []:
                        name = str(entry.get("displayName") or "").strip()
                        if name:
                            found.append(Category(name, str(entry.get("color") or "none")
                                                  .lower()))
        except MailboxError as exc:
            cause = exc.__cause__
            if isinstance(cause, GraphError) and cause.status == 403:
                raise MailboxError(
                    f"The application {self.access.client_id!r} may not read the category list "
                    f"of {self.access.mailbox}: grant it the application permission "
                    "MailboxSettings.Read (with admin consent).") from exc
            raise
        return by_name(found)

    # reading
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
            return (f"{user}/calendars/{_q(folder.id)}/calendarView/delta?"
                    f"startDateTime={window[0]}&endDateTime={window[1]}"), window
        if folder.kind is Kind.CONTACTS:
            return f"{user}/contactFolders/{_q(folder.id)}/contacts/delta?$select=id,changeKey", \
                None
        link = f"{user}/mailFolders/{_q(folder.id)}/messages/delta?" \
            "$select=id,changeKey,receivedDateTime"
        if received_after is not None:
            link += f"&$filter=receivedDateTime+ge+{m.format_time(received_after)}"
        return link, None

    def _window_moved(self, state: _State) -> bool:
        if state.window is None:
            return False
        wanted_start, wanted_end = self._window()
        margin = dt.timedelta(days=WINDOW_MARGIN_DAYS)
        start, end = (m.parse_time(v) for v in state.window)
        assert start is not None and end is not None
        return wanted_start + margin < start or wanted_end - margin > end

    def read_changes(self, folder: FolderInfo, state: str | None,
                     page_size: int = BATCH_SIZE, known: KnownVersions | None = None,
                     received_after: dt.datetime | None = None) -> Iterator[ChangePage]:
        if folder.kind is None:
            raise FolderNotFound(f"The folder {folder.path!r} holds no items this server syncs.")
        current = _State.load(state)
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
                current = _State(link, window)
            try:
                answer = self.client.call("GET", current.link, prefer=prefer)
            except GraphError as exc:
                if exc.status == 404 and exc.code != "SyncStateNotFound":
                    raise FolderNotFound("The folder no longer exists in the mailbox: choose "
                                         "it again.") from exc
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
        return self._with_records(kind, changes, upserts, known)

    def _with_records(self, kind: Kind, changes: list[ItemChange], upserts: dict[str, ItemRef],
                      known: KnownVersions | None) -> tuple[list[ItemChange], list[ItemError]]:
        already = known(list(upserts.values())) if known and upserts else set()
        for item_id in already:
            if item_id in upserts:
                changes.append(ItemChange(ChangeType.UPSERT, upserts.pop(item_id)))
        errors: list[ItemError] = []
        for result in self.fetch(kind, list(upserts.values())):
            if isinstance(result, ItemError):
                if result.code == "ErrorItemNotFound" and result.ref is not None:
                    changes.append(ItemChange(ChangeType.DELETE, result.ref))  # gone meanwhile
                else:
                    errors.append(result)
            else:
                changes.append(ItemChange(ChangeType.UPSERT, result[0], result[1]))
        return changes, errors

    def _calendar_page(self, folder: FolderInfo, values: list[dict[str, Any]], state: _State,
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
                if _short_id(item_id) in singles:
                    singles.discard(_short_id(item_id))
                    upserts.pop(item_id, None)
                    changes.append(ItemChange(ChangeType.DELETE, ItemRef(item_id)))
                else:   # an occurrence: its series is looked at by the series check
                    state.occurrences_removed = True
                continue
            kind = value.get("type") or "singleInstance"
            if kind == "singleInstance":
                singles.add(_short_id(item_id))
                upserts[item_id] = ItemRef(item_id, str(value.get("changeKey") or ""))
                continue
            master = str(value.get("seriesMasterId") or item_id)
            if _short_id(master) not in given and master not in masters:
                masters.append(master)
        for ref in self._master_refs(masters, known is not None):
            given.add(_short_id(ref.id))
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

    def _series_check(self, folder: FolderInfo, state: _State) -> list[ItemChange]:
        """The masters seen before, compared with the calendar's: gone ones are DELETEs,
        changed ones (an occurrence deleted, say) come again."""
        if not state.masters:
            return []
        present: dict[str, str] = {}
        with self._errors():
            for page in self.client.pages(
                    f"{self.client.user}/calendars/{_q(folder.id)}/events",
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
            elif present[master_id] != version and _short_id(master_id) not in state.given:
                changed.append(ItemRef(master_id, present[master_id]))
        for result in self.fetch(Kind.CALENDAR, changed):
            if not isinstance(result, ItemError):
                state.masters[result[0].id] = result[0].version
                changes.append(ItemChange(ChangeType.UPSERT, result[0], result[1]))
        return changes

    def fetch(self, kind: Kind, refs: Sequence[ItemRef]) -> list[Fetched]:
        if not refs:
            return []
        query = FETCH_QUERY[kind]
        prefer = EVENTS_PREFER if kind is Kind.CALENDAR else \
            f'{IMMUTABLE_IDS}, outlook.body-content-type="html"'
        answers = self._batch([BatchRequest("GET", f"{self._item_url(kind, r.id)}?{query}")
                               for r in refs], prefer)
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
        if answer.status == 404:
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
        masters = [r for r in fetched if not isinstance(r, ItemError)
                   and isinstance(r[1], EventRecord) and r[1].kind == "master"
                   and r[1].recurrence is not None and r[1].start is not None]
        requests = []
        spans = []
        for ref, record in masters:   # type: ignore[misc]
            assert isinstance(record, EventRecord) and record.start and record.recurrence
            zone = record.time_zone or self.access.time_zone
            last = recurrence.last_start(record.recurrence, record.start, zone)
            duration = (record.end - record.start) if record.end else dt.timedelta(0)
            span = (record.start - dt.timedelta(days=1), last + duration + dt.timedelta(days=1))
            spans.append((span, zone))
            requests.append(BatchRequest(
                "GET", f"{self._item_url(Kind.CALENDAR, ref.id, '/instances')}?"
                f"startDateTime={m.format_time(span[0])}&endDateTime={m.format_time(span[1])}"
                f"&$select={m.EVENT_SELECT}&$top=1000"))
        answers = self._batch(requests, EVENTS_PREFER)
        for (ref, record), answer, (span, zone) in zip(masters, answers, spans, strict=True):
            assert isinstance(record, EventRecord) and record.recurrence and record.start
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
                start for _, start in recurrence.occurrences(record.recurrence, record.start,
                                                             zone, until=span[1])
                if start not in originals)

    def read_window(self, folder: FolderInfo, start: dt.datetime, end: dt.datetime,
                    known: KnownVersions | None = None,
                    known_series: Callable[[list[str]], set[str]] | None = None,
                    ) -> Iterator[tuple[ItemRef, EventRecord]]:
        singles: dict[str, ItemRef] = {}
        master_ids: dict[str, None] = {}
        with self._errors():
            for page in self.client.pages(
                    f"{self.client.user}/calendars/{_q(folder.id)}/calendarView",
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
        for fetched in self.fetch(Kind.CALENDAR, [*singles.values(), *masters]):
            if isinstance(fetched, ItemError):
                log.warning("Calendar item skipped: %s", fetched.message)
                continue
            ref, record = fetched
            assert isinstance(record, EventRecord)
            yield ref, record

    def find_by_stamp(self, folder: FolderInfo, stamps: Sequence[str]) -> dict[str, ItemRef]:
        wanted = list(dict.fromkeys(s for s in stamps if s))
        if folder.kind is Kind.CALENDAR:
            base = f"{self.client.user}/calendars/{_q(folder.id)}/events"
        elif folder.kind is Kind.CONTACTS:
            base = f"{self.client.user}/contactFolders/{_q(folder.id)}/contacts"
        else:
            base = f"{self.client.user}/mailFolders/{_q(folder.id)}/messages"
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

    def locate(self, kind: Kind, sought: Sequence[Sought]) -> dict[str, Located]:
        """Immutable ids stay when an item moves: each item is asked where it is, 20 to a
        `$batch`. An event answers with its calendar (v1.0 gives events no parentFolderId);
        Graph serves no event that is in Deleted Items, which makes it a deletion too."""
        if not sought:
            return {}
        if kind is Kind.CALENDAR:
            answers = self._batch([BatchRequest("GET", self._item_url(
                kind, item.ref.id, "/calendar?$select=id,name")) for item in sought],
                EVENTS_PREFER)
        else:
            answers = self._batch([BatchRequest("GET", self._item_url(
                kind, item.ref.id, "?$select=id,changeKey,parentFolderId")) for item in sought])
        found: dict[str, Located] = {}
        for item, answer in zip(sought, answers, strict=True):
            if answer.status == 404:
                continue   # deleted for good (or, an event, in Deleted Items)
            if not answer.ok or not isinstance(answer.body, dict):
                raise translate(answer.error(), self.access)
            if kind is Kind.CALENDAR:
                calendar = self.get_folder(str(answer.body.get("id") or ""), kind)
                found[item.ref.id] = Located(ItemRef(item.ref.id), calendar.path, False)
            else:
                path, deleted = self._where(kind, str(answer.body.get("parentFolderId") or ""))
                found[item.ref.id] = Located(
                    ItemRef(item.ref.id, str(answer.body.get("changeKey") or "")), path, deleted)
        return found

    def _where(self, kind: Kind, folder_id: str) -> tuple[str, bool]:
        """A folder's display path from the top of the mailbox, and whether it lies in Deleted
        Items; each folder asked once (a contact may be in a mail folder, Archive, and the
        other way round, so the folder is asked as either)."""
        if folder_id in self._places:
            return self._places[folder_id]
        top = self._get_folder_json(Kind.MAIL, "msgfolderroot")["id"]
        trash = self._get_folder_json(Kind.MAIL, "deleteditems")["id"]
        kinds = (kind, Kind.MAIL) if kind is Kind.CONTACTS else (Kind.MAIL, Kind.CONTACTS)
        names: list[str] = []
        deleted, current = False, folder_id
        while current and current != top and len(names) < 64:
            deleted = deleted or current == trash
            found = next((self._folder_cache[(k, current)] for k in kinds
                          if (k, current) in self._folder_cache), None)
            for folder_kind in kinds if found is None else ():
                with contextlib.suppress(FolderNotFound):
                    found = self._get_folder_json(folder_kind, current)
                    break
            if found is None:
                break
            names.append(str(found.get("displayName") or ""))
            current = str(found.get("parentFolderId") or "")
        self._places[folder_id] = ("/".join(reversed(names)), deleted)
        return self._places[folder_id]

    # writing
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
            target = f"{self.client.user}/calendars/{_q(folder.id)}/events"
        elif kind is Kind.CONTACTS:
            target = f"{self.client.user}/contactFolders/{_q(folder.id)}/contacts"
        else:
            target = f"{self.client.user}/mailFolders/{_q(folder.id)}/messages"
        results: list[WriteResult | None] = [None] * len(records)
        requests: list[BatchRequest] = []
        indexes: list[int] = []
        for index, record in enumerate(records):
            try:
                body = self._json(kind, record)
            except (ValueError, TypeError) as exc:
                results[index] = WriteResult(WriteStatus.ERROR,
                                             message=f"The record cannot be written: {exc}")
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
                                             f"The record cannot be written: {exc}")
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
            redo = [bool(u.fields & {"exceptions", "deleted_occurrences", "recurrence"}
                         or (isinstance(u.record, EventRecord) and u.record.exceptions))
                    for u in updates]
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
        todo = [(i, r, res) for i, (r, res) in enumerate(zip(records, results, strict=True))
                if res.ok and res.ref is not None and isinstance(r, EventRecord)
                and r.recurrence is not None and r.start is not None
                and (r.exceptions or r.deleted_occurrences)]
        if not todo:
            return results
        listing = []
        for _, record, result in todo:
            assert isinstance(record, EventRecord) and record.start and result.ref
            slots = [e.original_start for e in record.exceptions if e.original_start] + \
                list(record.deleted_occurrences)
            first, last = min(slots), max(slots)
            listing.append(BatchRequest(
                "GET", f"{self._item_url(Kind.CALENDAR, result.ref.id, '/instances')}?"
                f"startDateTime={m.format_time(first - dt.timedelta(days=1))}&endDateTime="
                f"{m.format_time(last + dt.timedelta(days=2))}"
                "&$select=id,originalStart,start,type&$top=1000"))
        instance_lists = self._batch(listing, EVENTS_PREFER)
        writes: list[BatchRequest] = []
        owners: list[int] = []
        problems: dict[int, list[str]] = {}
        for (index, record, _), answer in zip(todo, instance_lists, strict=True):
            assert isinstance(record, EventRecord)
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
                        f"no occurrence starts at {exception.original_start}")
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
            Kind.CALENDAR, res.ref.id, "?$select=id,changeKey")) for _, _, res in todo
            if res.ref is not None])
        out = list(results)
        for (index, _, result), answer in zip(todo, versions, strict=True):
            ref = ItemRef(answer.body["id"], answer.body.get("changeKey") or "") \
                if answer.ok and isinstance(answer.body, dict) else result.ref
            message = ("Some occurrences could not be written: " + "; ".join(problems[index])) \
                if index in problems else result.message
            out[index] = WriteResult(result.status, ref, message)
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

    # photos and attachments
    def read_photo(self, ref: ItemRef) -> bytes | None:
        try:
            with self._errors(), self.client.stream(
                    self._item_url(Kind.CONTACTS, ref.id, "/photo/$value")) as response:
                return b"".join(response.iter_content(CHUNK))
        except MailboxError as exc:
            if isinstance(exc.__cause__, GraphError) and exc.__cause__.status == 404:
                return None
            raise

    def set_photo(self, ref: ItemRef, photo: bytes | None) -> WriteResult:
        url = self._item_url(Kind.CONTACTS, ref.id, "/photo")
        with self._errors():
            if photo:
                self.client.put_bytes(url + "/$value", photo, "image/jpeg")
                meta = self.client.call("GET", url)
                token = str((meta or {}).get("@odata.mediaEtag") or (meta or {}).get("id")
                            or "photo")
            else:
                try:
                    self.client.call("DELETE", url + "/$value")
                except GraphError as exc:
                    if exc.status != 404:
                        raise
                token = ""
            current = self.client.call("GET", self._item_url(Kind.CONTACTS, ref.id),
                                       params={"$select": "id,changeKey"})
        return WriteResult(WriteStatus.OK, ItemRef(current["id"], current.get("changeKey") or ""),
                           token=token)

    def open_attachment(self, item: ItemRef,
                        attachment_ref: str) -> AbstractContextManager[BinaryIO]:
        url = self._item_url(Kind.MAIL, item.id, f"/attachments/{_q(attachment_ref)}/$value")

        @contextlib.contextmanager
        def download() -> Iterator[BinaryIO]:
            with self.client.stream(url) as response:
                response.raw.decode_content = True
                yield response.raw   # type: ignore[misc]

        return server_stream(download(), self._errors)

    def write_item_attachment(self, item: ItemRef, attachment_ref: str, sink: BinaryIO) -> int:
        url = self._item_url(Kind.MAIL, item.id, f"/attachments/{_q(attachment_ref)}/$value")
        written = 0
        with contextlib.ExitStack() as stack:
            with self._errors():
                response = stack.enter_context(self.client.stream(url))
            chunks = response.iter_content(CHUNK)
            # Only the download's failures are the mailbox's: the sink's (a full share)
            # reach the caller as they are.
            while True:
                with self._errors():
                    chunk = next(chunks, b"")
                if not chunk:
                    break
                sink.write(chunk)
                written += len(chunk)
        if not written:
            raise MailboxError("The attached item has no MIME content to save.")
        return written


class _Background(Pending[Any]):
    def __init__(self, future: Future[Any]) -> None:
        super().__init__()
        self._future, self._done = future, False

    def result(self) -> Any:
        if not self._done:
            self._done = True
            try:
                self._value = self._future.result()
            except BaseException as exc:
                self._error = exc
        return super().result()


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
    if answer.status == 404:
        return WriteResult(WriteStatus.NOT_FOUND, ref, GONE)
    if not answer.ok:
        error = answer.error()
        return WriteResult(WriteStatus.ERROR, ref, f"{error.code}: {error.message}".strip(": "))
    body = answer.body if isinstance(answer.body, dict) else {}
    if body.get("id"):
        return WriteResult(WriteStatus.OK,
                           ItemRef(str(body["id"]), str(body.get("changeKey") or "")))
    return WriteResult(WriteStatus.OK, ref)
