"""The interface to a CRM, as the sync engine sees it (the built-in store today, others later).

Records are addressed by opaque string keys; versions and change cursors are opaque too (the
built-in store uses its revisions; an API CRM may use a time and the keys seen at it). Like
the mailbox interface, nothing here knows Django models or Exchange: only the two class
methods that build and test a backend are handed the configuration (a profile, an
organization's CRM connection), which each kind reads as it needs.

A kind of CRM is a CrmBackend subclass named by dotted path in SYNC_CRM_KINDS
(engine/crmstore/registry.py): it declares its label, what it can do (`capabilities`) and the
settings its connection asks for (`settings_fields`), and the record fields it has no place
for (`unheld_fields`).
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from engine.records import Kind, MessageRecord, Record

if TYPE_CHECKING:
    from django.utils.functional import Promise

    from profiles.models import CrmConnection, SyncProfile


@dataclass(frozen=True)
class CrmChange:
    key: str
    deleted: bool
    # The record's version after the change, as fetch() gives it ("": not known), opaque like
    # every version: a pending change in the version a link holds is the run's own write.
    version: str = ""


@dataclass
class CrmRecord:
    key: str
    version: str
    record: Record
    modified: dt.datetime | None = None


@dataclass(frozen=True)
class CrmUpdate:
    """Write `fields` of `record` to the record `key`. With `version` (the one the change was
    planned from), only if the record is still in that version: a user's edit made since is
    not overwritten unseen."""

    key: str
    record: Record
    fields: frozenset[str]
    version: str = ""


CHANGED_MEANWHILE = "Changed in the CRM since it was read; it will be merged next time."


@dataclass
class CrmWrite:
    """The result of one write: the record's key and new version, or why it failed."""

    key: str = ""
    version: str = ""
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    token: str = ""           # set_photo: the new photo token
    conflict: bool = False    # refused: not in the version the update named

    @classmethod
    def changed_meanwhile(cls, key: str) -> CrmWrite:
        return cls(key, error=CHANGED_MEANWHILE, conflict=True)

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class FiledEmail:
    """An e-mail the CRM holds for a mailbox item."""

    key: str
    subject: str = ""


@dataclass(frozen=True)
class EmailMatch:
    """What the CRM holds for a message: its e-mail if filed already (from any mailbox), and
    whether the importing CRM user has it; else, if one, another e-mail with the same
    Message-ID: a different message, since its sender, date or subject differ."""

    key: str = ""
    mine: bool = False
    collided: str = ""


@dataclass(frozen=True)
class SavedDocument:
    """An attachment saved on the share, to be recorded against its e-mail in the CRM."""

    root: str      # the approved share root
    path: str      # below the root, with forward slashes
    name: str      # the attachment's name in the CRM (unique within its e-mail)
    size: int
    sha256: str
    category: str  # the document category's name, created if new


@dataclass(frozen=True)
class Filing:
    """The e-mail a message was filed as, and whether filing it created it; `error`: what
    could not be done (a document not recorded; with no key, the e-mail not filed), in
    words for the run's history. The message is then filed again by the next run."""

    key: str
    created: bool
    error: str = ""


@dataclass(frozen=True)
class RecordSummary:
    """A CRM record as a person reading a report knows it: its name, its synced fields, and
    what the record does not hold but a reader tells records apart by."""

    key: str
    title: str                         # a person's name, an event's subject
    record: Record                     # its synced fields (a series without exceptions)
    companies: tuple[str, ...] = ()    # all of a person's companies (the record: its first)
    owner: str = ""                    # an event's owner: an address (lower case), else a name


@dataclass(frozen=True)
class OrganizationChanges:
    """What changed in one organization's CRM since a `ChangeWatch` last looked."""

    organization_id: int
    persons: bool                   # some person was created, changed or deleted
    events: frozenset[str] | None   # the changed events' keys; None: too many to name
    event_owners: frozenset[str]    # the CRM users owning the named events


class ChangeWatch(abc.ABC):
    """A kind of CRM's changes as the listener follows them, every organization's at once, so
    that a user's edit in the CRM starts the syncs it concerns within seconds."""

    @abc.abstractmethod
    def changes(self) -> list[OrganizationChanges]:
        """The organizations whose records changed since the last call. The first call only
        marks where watching starts: what changed before it is left to the schedule."""
class CrmError(Exception):
    """The CRM cannot be worked with now (a refused sign-in, an unreachable server, a used-up
    request budget): the run ends with `message`, plain words an administrator can act on.
    What the run recorded before stays, and the next run goes on from there."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CrmItemError(CrmError):
    """One record could not be read or written (malformed, refused, a server error on it):
    recorded against that record, which is looked at again next run, while the run goes
    on."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class Capability(StrEnum):
    """What a CRM may lack; the profile options that rely on one are hidden without it."""

    CLASSIFICATION = "classification"    # a classification tree (contact scope by branch)
    PHOTOS = "photos"                    # a photo per person
    THREE_ADDRESSES = "three_addresses"  # business, home and other postal addresses
    EVENT_STATUSES = "event_statuses"    # a list of event statuses (imported events' status)


# The record fields a capability stands for: a CRM with it holds every one of them, a CRM
# without it lacks at least one (its `unheld` fields say which).
CAPABILITY_FIELDS: Mapping[Capability, Mapping[Kind, frozenset[str]]] = {
    Capability.PHOTOS: {Kind.CONTACTS: frozenset({"photo_token"})},
    Capability.THREE_ADDRESSES: {Kind.CONTACTS: frozenset(
        {"business_address", "home_address", "other_address"})},
}
# What a kind that declares only its capabilities lacks without one: no photo; of the
# addresses, all but the business one.
UNHELD_WITHOUT: Mapping[Capability, Mapping[Kind, frozenset[str]]] = {
    Capability.PHOTOS: {Kind.CONTACTS: frozenset({"photo_token"})},
    Capability.THREE_ADDRESSES: {Kind.CONTACTS: frozenset({"home_address", "other_address"})},
}


@dataclass(frozen=True)
class SettingField:
    """One setting a kind's connection asks for; a secret one is stored encrypted and never
    shown again."""

    name: str
    label: Promise | str
    secret: bool = False
    required: bool = True
    help_text: Promise | str = ""


@dataclass(frozen=True)
class CrmDiagnosis:
    """What "Test connection" found, in words an administrator can act on."""

    ok: bool
    message: str


class CrmBackend(abc.ABC):
    """One organization's CRM, seen by one CRM user (who owns what the sync creates)."""

    @classmethod
    def change_watch(cls, events_named: int) -> ChangeWatch | None:
        """A watch over this kind of CRM's changes, naming up to `events_named` changed
        events of an organization at a time; None for a CRM that cannot be watched (its
        changes wait for the scheduled syncs)."""
        return None

    # --- the kind: what the admin shows and offers for connections of this kind -----------
    label: ClassVar[Promise | str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    settings_fields: ClassVar[tuple[SettingField, ...]] = ()
    # The record fields this kind has no place for, by kind of record: the engine neither
    # hands them to it nor compares them with Exchange, so Exchange keeps its own values.
    # None: what its capabilities imply (UNHELD_WITHOUT); a kind naming its own lists them
    # all, and its capabilities must agree (engine/crmstore/unheld.py checks them).
    unheld_fields: ClassVar[Mapping[Kind, frozenset[str]] | None] = None

    @classmethod
    def unheld(cls, kind: Kind) -> frozenset[str]:
        """The fields of a `kind` record this CRM cannot hold."""
        if cls.unheld_fields is not None:
            return frozenset(cls.unheld_fields.get(kind, frozenset()))
        return frozenset().union(*(UNHELD_WITHOUT[c].get(kind, frozenset())
                                   for c in UNHELD_WITHOUT if c not in cls.capabilities))

    @classmethod
    @abc.abstractmethod
    def for_profile(cls, profile: SyncProfile, connection: CrmConnection) -> CrmBackend:
        """The CRM as `profile` sees it (its CRM user, its contact scope, its event options),
        reached through its organization's `connection`."""

    @classmethod
    @abc.abstractmethod
    def for_organization(cls, connection: CrmConnection) -> CrmBackend:
        """The CRM as a report reads it: every record of the organization, no profile's
        scope (the duplicates report's and the run history's look-ups and links)."""

    @classmethod
    def reached_by(cls, connection: CrmConnection) -> str:
        """Which CRM a connection reaches, as text: links and cursors made with one CRM mean
        nothing in another, so when this changes they are forgotten (engine/crm_switch.py).
        By default the kind and every setting; a kind whose settings include some that do
        not change the CRM reached (a note, a time-out) says so by overriding this."""
        settings = json.dumps(connection.settings or {}, sort_keys=True)
        return f"{connection.kind}:{hashlib.sha256(settings.encode()).hexdigest()[:16]}"

    @classmethod
    @abc.abstractmethod
    def diagnose(cls, connection: CrmConnection) -> CrmDiagnosis:
        """"Test connection": whether the CRM answers, and what is missing for syncing."""

    @abc.abstractmethod
    def current_cursor(self) -> str:
        """Where the CRM's changes stand now, as opaque text the engine stores and hands back
        to `changes_since`: everything changed after it will come from there. "" is the
        cursor before any change (that of a folder never read)."""

    @abc.abstractmethod
    def changes_since(self, kind: Kind, cursor: str) -> Iterator[CrmChange]:
        """Keys created, changed or deleted after `cursor` ("": ever), oldest first."""

    def cursor_past_own_writes(self, kind: Kind, cursor: str, own_versions: set[str]) -> str:
        """The cursor a run stores when it noted `cursor` at its start and then wrote the
        records now in `own_versions` (the versions its writes gave them): past the changes
        that are only its own writes, never past one made by anybody else, which the next
        run must still read. This default stays at `cursor`: the next run reads the writes
        back and finds them in the versions their links hold."""
        return cursor

    @abc.abstractmethod
    def fetch(self, kind: Kind, keys: Sequence[str]) -> dict[str, CrmRecord]:
        """Current records (missing keys are absent from the result)."""

    def fetch_failures(self) -> list[CrmItemError]:
        """The records the latest fetch() could not read, each with why, taken once. They
        are neither records nor deletions: the run records each against its key, looks at
        it again next run and goes on. A CRM whose reads fail only as a whole (raising
        CrmError) has none."""
        return []

    @abc.abstractmethod
    def in_scope(self, kind: Kind, keys: Sequence[str]) -> set[str]:
        """Which of these records the profile syncs: persons its CRM user owns or is
        assigned to, of the whole organization or of a classification branch, as the
        profile chose; its own events."""

    @abc.abstractmethod
    def create(self, kind: Kind, record: Record, origin: str) -> CrmWrite:
        """Create a record from an Exchange item; `origin` is stamped on it (its identity).
        It belongs to the profile's CRM user, and lies in the profile's scope."""

    def create_many(self, kind: Kind, items: Sequence[tuple[Record, str]]) -> list[CrmWrite]:
        """Several `create()`s, one result per (record, origin) in order. A backend may do
        them together (a first import creates thousands); this one does them one by one."""
        return [self.create(kind, record, origin) for record, origin in items]

    @abc.abstractmethod
    def update(self, kind: Kind, key: str, record: Record, fields: frozenset[str],
               version: str = "") -> CrmWrite:
        """Write only `fields` of `record` to the record `key`; with `version`, only if the
        record is still in that version (else a `conflict` result, nothing written)."""

    def update_many(self, kind: Kind, updates: Sequence[CrmUpdate]) -> list[CrmWrite]:
        """Several `update()`s, one result per update in order. A backend may do them
        together (a first two-way sync fills fields of many linked pairs)."""
        return [self.update(kind, u.key, u.record, u.fields, u.version) for u in updates]

    @abc.abstractmethod
    def delete(self, kind: Kind, key: str) -> CrmWrite:
        """Delete a record (a missing one counts as deleted)."""

    @abc.abstractmethod
    def find_by_origin(self, kind: Kind, origins: Sequence[str]) -> dict[str, str]:
        """Records created from these Exchange items: origin -> key (crash recovery)."""

    @abc.abstractmethod
    def find_by_email(self, addresses: Sequence[str]) -> dict[str, list[str]]:
        """Persons having each address (lower case) among their e-mails, in scope or not."""

    @abc.abstractmethod
    def find_by_name(self, keys: Sequence[str]) -> dict[str, list[str]]:
        """Persons without any e-mail address having each name key (`engine.matching`:
        normalized full name and company), in scope or not."""

    @abc.abstractmethod
    def find_or_create_company(self, name: str) -> str:
        """The company of that name, matched case- and space-insensitively, created if new."""

    @abc.abstractmethod
    def persons_in_branch(self, node: str) -> Iterator[str]:
        """Keys of the persons of a classification node and of its sub-nodes."""

    @abc.abstractmethod
    def find_by_uid(self, uids: Sequence[str]) -> dict[str, str]:
        """Events with these meeting UIDs, whoever owns them: uid -> key."""

    @abc.abstractmethod
    def events_in_window(self, start: dt.datetime, end: dt.datetime) -> list[str]:
        """Keys of the profile's events that may overlap [start, end)."""

    @abc.abstractmethod
    def leave_event(self, key: str, address: str, successor: str) -> CrmWrite:
        """The profile's user no longer attends the event `key` (a meeting other synced
        users still have): the participant with the e-mail `address` is taken off it, and
        an event the user owns passes to the CRM user `successor`. A missing event is left."""

    @abc.abstractmethod
    def read_photo(self, key: str) -> bytes | None:
        """A person's photo, or None."""

    @abc.abstractmethod
    def set_photo(self, key: str, photo: bytes | None) -> CrmWrite:
        """Replace or remove a person's photo."""

    @abc.abstractmethod
    def stamp(self, kind: Kind, key: str) -> str:
        """The identity stamp an Exchange item linked to this record carries."""

    @abc.abstractmethod
    def key_from_stamp(self, kind: Kind, stamp: str) -> str | None:
        """The key a stamp names, if the stamp is this CRM's (else None)."""

    # --- reports -------------------------------------------------------------------------------
    @abc.abstractmethod
    def summaries(self, kind: Kind, keys: Sequence[str]) -> dict[str, RecordSummary]:
        """The records as a report shows them (missing keys are absent from the result)."""

    @abc.abstractmethod
    def field_labels(self, kind: Kind) -> dict[str, str]:
        """The CRM's own names of a record's fields, in the reader's language, by the
        record's field names (an address by its parts: `business_city`)."""

    @abc.abstractmethod
    def record_url(self, kind: Kind, key: str) -> str:
        """The address of the record's page in the CRM itself, "" where it has none. Who may
        follow it is the caller's rule."""

    # --- e-mail import ------------------------------------------------------------------------
    def own_user(self) -> str:
        """The CRM user a profile's backend acts for, named as the e-mail import's `user`
        names users; "" where that is the profile's CRM user row (the built-in store)."""
        return ""

    @abc.abstractmethod
    def filed_emails(self, user: str, origins: Sequence[str]) -> dict[str, FiledEmail]:
        """The e-mails the CRM user `user` has, filed from these mailbox items: origin -> it."""

    @abc.abstractmethod
    def find_email(self, message: MessageRecord, origin: str, user: str) -> EmailMatch:
        """The message's e-mail, if filed already: by its Internet Message-ID and fingerprint
        (sender, date, subject), or for a message without a Message-ID by the mailbox item
        `origin` it was filed from."""

    def find_emails(self, messages: Sequence[tuple[MessageRecord, str]], user: str
                    ) -> list[EmailMatch]:
        """`find_email` of each (message, origin), in order: the import asks it for a page of
        messages at once. This default asks one by one."""
        return [self.find_email(message, origin, user) for message, origin in messages]

    @abc.abstractmethod
    def file_email(self, message: MessageRecord, origin: str, match: EmailMatch, user: str,
                   persons: Sequence[str], documents: Sequence[SavedDocument]) -> Filing:
        """File the message: create its e-mail (none in `match`), or take the one `match`
        names; link it to the CRM user `user`, to the `persons` and to their companies; record
        the `documents` against it, those of a name it has already left out. One e-mail per
        message even when two imports file it at once: the one that comes second takes the
        first one's."""

    @abc.abstractmethod
    def email_documents(self, key: str) -> list[str]:
        """The names of the documents recorded against an e-mail, one per document."""

    @abc.abstractmethod
    def person_names(self, keys: Sequence[str]) -> dict[str, str]:
        """How the CRM names these persons, as a person reads them in a list."""

    def shared_transaction(self) -> contextlib.AbstractContextManager[object]:
        """A block whose CRM writes commit together with the engine's own rows written in it,
        for a CRM kept in the engine's database (one commit, not one per write). A CRM reached
        over the network cannot join a transaction, and must not run inside one: this
        default is a block that does nothing."""
        return contextlib.nullcontext()
