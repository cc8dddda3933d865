"""The interface every mailbox backend implements (Exchange over EWS today, Graph next).

Modelled on Django's session backends: a small documented base class, one module per backend.
Nothing here speaks EWS: items are addressed by opaque `ItemRef`s, folders by `FolderInfo`,
change tracking by an opaque `state` string the engine stores and hands back.

Errors a person can act on are `MailboxError` subclasses with a plain-words message; a bad
single item is never an exception that stops a batch, but a `WriteResult`/`ItemError` in the
list of results.
"""

from __future__ import annotations

import abc
import datetime as dt
import enum
import http
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar, TypeVar

from engine.mailbox.background import Pending
from engine.records import EventRecord, Kind, Record

T = TypeVar("T")
BATCH_SIZE = 100   # items per request: Exchange's and Graph's sweet spot
# File attachments of at most this size are read many per request (`read_attachments`), their
# content held in memory; bigger ones are streamed one by one (`open_attachment`).
SMALL_ATTACHMENT_BYTES = 1024 * 1024
# What one `read_attachments` call may hold at once: the callers group their attachments so
# that the sizes add up to no more, which bounds the memory of a batch of them.
ATTACHMENT_BATCH_BYTES = 8 * 1024 * 1024


# --- what connecting needs ----------------------------------------------------------------
class Auth(enum.StrEnum):
    NTLM = "ntlm"
    BASIC = "basic"
    OAUTH2 = "oauth2"


@dataclass(frozen=True)
class MailboxAccess:
    """Everything a backend needs to reach one mailbox; built from a connection and a profile."""

    mailbox: str                          # SMTP address of the mailbox to open
    endpoint: str                         # EWS URL (Graph: the API root)
    auth: Auth
    username: str = ""
    secret: str = field(default="", repr=False)
    impersonate: bool = True              # service account acting as the mailbox's owner
    tenant_id: str = ""
    client_id: str = ""
    token_url: str = ""                   # blank: the identity platform's own
    verify_tls: bool = True
    server_version: str = ""              # e.g. Exchange2016; blank: the backend's default
    time_zone: str = "Europe/Prague"
    throttle_budget_seconds: float = 300  # total waiting for throttling per run
    # The profile's calendar window (days before and after today): a backend that reads
    # calendar changes over a window (Graph's calendarView delta) reads this one.
    calendar_days_past: int = 14
    calendar_days_future: int = 31
    # Changes whenever the connection's settings change, so cached sessions are dropped.
    settings_version: str = ""


# --- what a backend returns ---------------------------------------------------------------
@dataclass(frozen=True)
class ItemRef:
    """An item's identity on the mailbox side and the version seen (EWS: ItemId + ChangeKey)."""

    id: str
    version: str = ""


@dataclass(frozen=True)
class FolderInfo:
    id: str
    path: str                 # display path from the top of the mailbox: "Contacts/CRM"
    kind: Kind | None         # None: a folder of another kind (tasks, notes…)
    parent_id: str = ""
    total: int | None = None


@dataclass(frozen=True)
class Category:
    """A category of the mailbox's master category list, the one Outlook's category dialog
    offers (items may carry categories that are not in it)."""

    name: str
    # Outlook's colour preset as Graph names it: "preset0" (red) to "preset24", or "none".
    color: str = "none"


class ChangeType(enum.StrEnum):
    UPSERT = "upsert"         # created or updated: `record` holds the current content
    DELETE = "delete"         # gone from the folder (deleted or moved away)


@dataclass
class ItemChange:
    type: ChangeType
    ref: ItemRef
    record: Record | None = None


@dataclass
class ItemError:
    """One item that could not be read or written, and why, in words."""

    ref: ItemRef | None
    message: str
    code: str = ""


# Which of these items the caller already has in exactly this version (so they need not be
# fetched again: the engine's own writes, read back).
KnownVersions = Callable[[list[ItemRef]], set[str]]

# What fetching one item gives: its current identity and record, or why not.
Fetched = tuple[ItemRef, Record] | ItemError


@dataclass
class LeftOut:
    """Mail a read listed but did not fetch: received before the window it was asked for."""

    ref: ItemRef
    title: str
    received: dt.datetime


@dataclass
class ChangePage:
    """One page of changes. The engine applies them, then stores `state`: that is the checkpoint."""

    changes: list[ItemChange]
    errors: list[ItemError]
    state: str
    done: bool
    # The stored state was refused (invalid or expired), so this read started from scratch:
    # every item comes again as an upsert, and the engine must match, not create.
    restarted: bool = False
    # Mail created or changed, but received before `received_after` (so the e-mail import can
    # say why it files none of it); a server that filters it out itself lists none.
    left_out: list[LeftOut] = field(default_factory=list)


class WriteStatus(enum.StrEnum):
    OK = "ok"
    CONFLICT = "conflict"     # changed on the server since the version we had
    NOT_FOUND = "not_found"
    ERROR = "error"
    # Not written, and never will be as things stand: the write would have the server mail
    # people (Graph on a meeting the mailbox organizes). Not tried again; the message says why.
    REFUSED = "refused"


@dataclass
class WriteResult:
    status: WriteStatus
    ref: ItemRef | None = None     # the item's new identity/version after the write
    message: str = ""
    token: str = ""                # set_photo: the new photo token (ContactRecord.photo_token)

    @property
    def ok(self) -> bool:
        return self.status is WriteStatus.OK


@dataclass(frozen=True)
class Update:
    ref: ItemRef
    record: Record
    fields: frozenset[str]         # record field names that changed: only these are sent


@dataclass(frozen=True)
class Sought:
    """An item gone from a synced folder, to be looked for across the mailbox: its id as the
    folder knew it and what identifies it wherever it went. EWS ItemIds change when an item
    moves, so an EWS backend looks for the identity stamp (or, for an event, its meeting UID);
    Graph's immutable ids stay, so a Graph backend asks for the id."""

    ref: ItemRef
    stamp: str = ""
    uid: str = ""


@dataclass(frozen=True)
class Located:
    """Where a sought item is now."""

    ref: ItemRef                   # its identity there
    folder_path: str               # display path from the top of the mailbox: "Archive/2026"
    deleted: bool                  # in Deleted Items (or a folder inside it)


@dataclass(frozen=True)
class ServerInfo:
    version: str                   # e.g. "Exchange2016 (15.1.2507.6)"
    mailbox: str


@dataclass(frozen=True)
class WatchTarget:
    """One mailbox of a group watched together (`MailboxBackend.watch_many`)."""

    key: int                          # the caller's name for it (the listener: a profile id)
    access: MailboxAccess             # how to reach it: the group's connection, as this mailbox
    folders: tuple[FolderInfo, ...]


@dataclass
class WatchReport:
    """What a group's stream brought: the folders that changed (ids as the target gave them)
    per target key, and the targets that could not be watched, each with why."""

    changed: dict[int, set[str]] = field(default_factory=dict)
    failed: dict[int, MailboxError] = field(default_factory=dict)


# --- errors a person can act on -------------------------------------------------------------
class MailboxError(Exception):
    """A failure of the connection or the mailbox as a whole (not of one item)."""

    reason = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def internal_error(exc: BaseException) -> str:
    """A run's message for a failure that is no MailboxError. Its class only: an unforeseen
    exception's text may hold what a server answered, which the history never repeats (the
    server's log has the traceback)."""
    return f"Internal error ({type(exc).__name__}); the server's log has the details."


class DnsFailure(MailboxError):
    reason = "dns"


_OPENSSL_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")


def tls_reason(text: str) -> str:
    """OpenSSL's reason code in an error text (" (CERTIFICATE_VERIFY_FAILED)"), or "": what
    this server's TLS library made of a handshake, never words of the remote server."""
    found = _OPENSSL_REASON.search(text)
    return f" ({found.group(1)})" if found else ""


def status_words(status: int) -> str:
    """"HTTP 502 Bad Gateway": a remote answer told by its status code alone."""
    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


class NetworkRefused(MailboxError):
    """The address the server would connect to is outside what the operator allows
    (security/outbound.py): nothing was sent to it."""

    reason = "network_policy"


class ConnectionRefused(MailboxError):
    reason = "refused"


class TlsFailure(MailboxError):
    reason = "tls"


class AuthenticationFailed(MailboxError):
    reason = "auth"


class ImpersonationDenied(MailboxError):
    reason = "impersonation"


class MailboxNotFound(MailboxError):
    reason = "mailbox"


class ServiceUnavailable(MailboxError):
    """The server answers, but not as a mailbox service (EWS disabled, wrong URL, 5xx)."""

    reason = "service"


class TimedOut(MailboxError):
    reason = "timeout"


class Throttled(MailboxError):
    """The server kept asking us to wait longer than the run's budget allows."""

    reason = "throttled"


class FolderNotFound(MailboxError):
    reason = "folder"


class CannotMove(MailboxError):
    """The backend cannot move items of this kind between folders (Microsoft Graph has no
    move for contacts or events)."""

    reason = "cannot_move"

    def __init__(self, kind: Kind) -> None:
        super().__init__(
            f"This connection cannot move {kind.value} between folders, so the synced items "
            "cannot follow the agenda's new folder. Choose the old folder again, or move the "
            "items in Outlook and then force a resync.")


# --- the interface ---------------------------------------------------------------------------
class MailboxBackend(abc.ABC):
    """One open mailbox. Use as a context manager; not shared between threads."""

    # Whether an item keeps its id when it moves to another folder (Graph's immutable ids).
    # Where it does not (EWS), a moved item is found by its identity stamp (locate), so the
    # runner stamps the contacts it imports too, not only the items it creates.
    ids_survive_moves: bool = False

    def __init__(self, access: MailboxAccess) -> None:
        self.access = access

    def __enter__(self) -> MailboxBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 (optional hook: most backends hold nothing)
        """Release what this mailbox holds (the connection pool may outlive it)."""

    @property
    def requests_made(self) -> int:
        """Requests sent to the server through this object (for history and benchmarks)."""
        return 0

    def start(self, call: Callable[[], T]) -> Pending[T]:
        """Begin `call` (a call of this backend's own methods, touching nothing else) so that
        it may run while the caller goes on with database work; one at a time. This default
        runs it at once; a backend with network round trips runs it in the background."""
        try:
            return Pending(call())
        except Exception as exc:
            return Pending(error=exc)

    # connection and folders
    @abc.abstractmethod
    def check(self) -> ServerInfo:
        """Sign in and open the mailbox; raise a MailboxError saying what is wrong."""

    @abc.abstractmethod
    def list_folders(self, kind: Kind) -> list[FolderInfo]:
        """The mailbox's folders that hold `kind` items, as a tree in display-path order."""

    @abc.abstractmethod
    def get_folder(self, folder_id: str, kind: Kind) -> FolderInfo:
        """A folder by the id stored in a profile (or a well-known name such as "calendar")."""

    @abc.abstractmethod
    def categories(self) -> list[Category]:
        """The mailbox's master category list, sorted by name as Outlook lists it; empty for
        a mailbox that has none. A MailboxError says in words why it cannot be read."""

    def count_items(self, folder: FolderInfo) -> int | None:
        """How many items the folder holds, if the server says so in one cheap request; None
        where it does not. Only the progress shown while a first read goes on uses it."""
        return None

    # reading
    @abc.abstractmethod
    def read_changes(self, folder: FolderInfo, state: str | None,
                     page_size: int = BATCH_SIZE, known: KnownVersions | None = None,
                     received_after: dt.datetime | None = None) -> Iterator[ChangePage]:
        """Changes since `state` (None: everything), a page at a time, each with its checkpoint.

        Creates and updates come with their records fetched in batches, except those `known`
        names (they come as UPSERT with no record); deletions (and moves out of the folder)
        come as DELETE. With `received_after`, mail received earlier is left out unread (in
        the page's `left_out`, where the server lists it). An
        invalid or expired `state` restarts the read from scratch and marks that page
        `restarted`.
        """

    @abc.abstractmethod
    def read_window(self, folder: FolderInfo, start: dt.datetime, end: dt.datetime,
                    known: KnownVersions | None = None,
                    known_series: Callable[[list[str]], set[str]] | None = None,
                    ) -> Iterator[tuple[ItemRef, EventRecord]]:
        """Events overlapping [start, end): single events and series masters (each master once,
        with its exceptions and deleted occurrences), not the generated occurrences.

        Items `known` names and series whose UID `known_series` names are left out: the
        caller holds them already (their changes come through `read_changes`)."""

    @abc.abstractmethod
    def fetch(self, kind: Kind, refs: Sequence[ItemRef]) -> list[Fetched]:
        """Current content of these items, in input order."""

    @abc.abstractmethod
    def find_by_stamp(self, folder: FolderInfo, stamps: Sequence[str]) -> dict[str, ItemRef]:
        """The items in `folder` carrying these identity stamps (for crash recovery)."""

    @abc.abstractmethod
    def locate(self, kind: Kind, sought: Sequence[Sought]) -> dict[str, Located]:
        """Where these items, gone from a synced folder, are now, keyed by the sought ref's id;
        an item found nowhere in the mailbox (deleted for good) is left out. One search for the
        whole batch (a few requests however many items), never a request per item. An item
        found in several places is reported where it is not deleted, if it is anywhere."""

    # writing (batches of up to BATCH_SIZE; one bad item does not fail its batch)
    @abc.abstractmethod
    def create(self, folder: FolderInfo, records: Sequence[Record]) -> list[WriteResult]:
        """Create items, each stamped with its record's `stamp`. Never sends invitations."""

    @abc.abstractmethod
    def update(self, kind: Kind, updates: Sequence[Update]) -> list[WriteResult]:
        """Send only the changed fields; a stale version comes back as CONFLICT."""

    @abc.abstractmethod
    def delete(self, kind: Kind, refs: Sequence[ItemRef]) -> list[WriteResult]:
        """Move items to Deleted Items (recoverable). Never sends cancellations."""

    def move(self, kind: Kind, refs: Sequence[ItemRef], folder: FolderInfo) -> list[WriteResult]:
        """Move items into `folder` of the same mailbox, in input order; each result's ref is
        the item's identity there (EWS gives a moved item a new ItemId). Used when an
        agenda's folder is changed after its first sync: the synced items go with it, so
        nothing is created a second time in the new folder. A backend that cannot move
        items of `kind` raises `CannotMove`, before anything is moved."""
        raise CannotMove(kind)

    # notifications
    def watch(self, folders: Sequence[FolderInfo], minutes: int = 30) -> Iterator[set[str]]:
        """Wait for changes in these folders; yield the ids of the folders that changed.
        Returns after about `minutes`; the caller watches again. A backend without push
        notifications does not override this, and its profiles sync on their schedule."""
        raise NotImplementedError("This mailbox backend cannot watch for changes.")

    # How many mailboxes one watch_many() call may carry (1: every mailbox needs its own).
    watch_group_size: ClassVar[int] = 1

    def watch_many(self, targets: Sequence[WatchTarget], minutes: int = 30,
                   until: Callable[[], bool] | None = None) -> Iterator[WatchReport]:
        """Wait for changes in several mailboxes of this backend's connection (each reached
        as its target's `access` says) over as few server connections as the backend can.

        Subscriptions outlive a call, so that nothing is missed between two: calling again
        with the same targets reuses them; a target no longer given is unsubscribed, one the
        server forgot (expired) is subscribed again. A target that cannot be watched (no such
        mailbox, no right to it) comes back in `failed` and is left out while the others go
        on; a failure of the connection as a whole raises a MailboxError. Returns when the
        server closes the connection after about `minutes`, or soon after `until()` turns
        true (asked whenever the server sends anything); the caller calls again. `close()`
        ends the subscriptions.

        This default watches one target, the mailbox this backend was opened on, with
        `watch()`; it raises NotImplementedError where `watch()` does."""
        if len(targets) != 1:
            raise NotImplementedError("This mailbox backend watches one mailbox at a time.")
        (target,) = targets
        for changed in self.watch(target.folders, minutes):
            yield WatchReport(changed={target.key: changed})
            if until is not None and until():
                return

    # photos and attachments
    @abc.abstractmethod
    def read_photo(self, ref: ItemRef) -> bytes | None:
        """A contact's photo (small by nature), or None."""

    @abc.abstractmethod
    def set_photo(self, ref: ItemRef, photo: bytes | None) -> WriteResult:
        """Replace or remove a contact's photo."""

    @abc.abstractmethod
    def open_attachment(self, item: ItemRef,
                        attachment_ref: str) -> AbstractContextManager[BinaryIO]:
        """A file attachment as a stream: read it in chunks, it is never held in memory whole."""

    def read_attachments(self, wanted: Sequence[tuple[ItemRef, str]]
                         ) -> list[bytes | MailboxError]:
        """The contents of small file attachments (each `(item, attachment_ref)`, at most
        SMALL_ATTACHMENT_BYTES, ATTACHMENT_BATCH_BYTES together), in the order asked, as few
        requests as the server allows; one that cannot be read is its MailboxError in the
        list, the others are read all the same. This default reads them one by one."""
        out: list[bytes | MailboxError] = []
        for item, attachment_ref in wanted:
            try:
                with self.open_attachment(item, attachment_ref) as stream:
                    out.append(stream.read())
            except MailboxError as exc:
                out.append(exc)
        return out

    @abc.abstractmethod
    def write_item_attachment(self, item: ItemRef, attachment_ref: str, sink: BinaryIO) -> int:
        """Write an attached item (an e-mail) to `sink` as MIME (.eml); return the bytes written."""
