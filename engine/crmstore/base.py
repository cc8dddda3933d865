"""The interface to a CRM, as the sync engine sees it (the built-in store today, others later).

Records are addressed by opaque string keys; versions are opaque too (the built-in store uses
its revisions). Like the mailbox interface, nothing here knows Django models or Exchange: only
the two class methods that build and test a backend are handed the configuration (a profile,
an organization's CRM connection), which each kind reads as it needs.

A kind of CRM is a CrmBackend subclass named by dotted path in SYNC_CRM_KINDS
(engine/crmstore/registry.py): it declares its label, what it can do (`capabilities`) and the
settings its connection asks for (`settings_fields`).
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from engine.records import Kind, Record

if TYPE_CHECKING:
    from django.utils.functional import Promise

    from profiles.models import CrmConnection, SyncProfile


@dataclass(frozen=True)
class CrmChange:
    key: str
    deleted: bool
    revision: int


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


class Capability(StrEnum):
    """What a CRM may lack; the profile options that rely on one are hidden without it."""

    CLASSIFICATION = "classification"    # a classification tree (contact scope by branch)
    PHOTOS = "photos"                    # a photo per person
    THREE_ADDRESSES = "three_addresses"  # business, home and other postal addresses
    EVENT_STATUSES = "event_statuses"    # a list of event statuses (imported events' status)


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

    # --- the kind: what the admin shows and offers for connections of this kind -----------
    label: ClassVar[Promise | str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    settings_fields: ClassVar[tuple[SettingField, ...]] = ()

    @classmethod
    @abc.abstractmethod
    def for_profile(cls, profile: SyncProfile, connection: CrmConnection) -> CrmBackend:
        """The CRM as `profile` sees it (its CRM user, its contact scope, its event options),
        reached through its organization's `connection`."""

    @classmethod
    @abc.abstractmethod
    def diagnose(cls, connection: CrmConnection) -> CrmDiagnosis:
        """"Test connection": whether the CRM answers, and what is missing for syncing."""

    @abc.abstractmethod
    def current_revision(self) -> int:
        """A cursor: everything changed after it will come from `changes_since`."""

    @abc.abstractmethod
    def changes_since(self, kind: Kind, revision: int) -> Iterator[CrmChange]:
        """Keys created, changed or deleted after `revision`, oldest first."""

    @abc.abstractmethod
    def fetch(self, kind: Kind, keys: Sequence[str]) -> dict[str, CrmRecord]:
        """Current records (missing keys are absent from the result)."""

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
