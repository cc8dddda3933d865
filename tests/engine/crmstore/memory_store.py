"""The data of the in-memory CRM (memory.py): one `Store` per organization, in this process.

A test backend: whatever it holds is lost when the process ends, and each process (a web
server, a worker, the listener) would have a store of its own. Organizations are named by
strings (a CRM connection's organization by its id as text); every `MemoryCrm` of one
organization sees the same store. Not thread-safe: tests drive it from one thread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from dataclasses import dataclass, field

from engine.crmstore.base import CrmChange, SavedDocument
from engine.records import ContactRecord, Kind, Record


@dataclass
class Row:
    record: Record
    version: int
    modified: dt.datetime
    origin: str
    owner: str
    branches: set[str] = field(default_factory=set)   # persons: classification nodes
    photo: bytes | None = None                         # persons
    participants: set[str] = field(default_factory=set)   # events: keys of persons


@dataclass
class FiledMail:
    """An e-mail filed from a mailbox: one per message, whichever mailboxes had it."""

    message_id: str                  # "" for a message without one
    fingerprint: tuple[str, str, str]
    origin: str                      # the mailbox item it was first filed from
    subject: str
    users: set[str] = field(default_factory=set)
    persons: set[str] = field(default_factory=set)
    companies: set[str] = field(default_factory=set)
    documents: dict[str, SavedDocument] = field(default_factory=dict)   # by name


@dataclass
class Store:
    """One organization's CRM."""

    revision: int = 0
    rows: dict[Kind, dict[str, Row]] = field(
        default_factory=lambda: {Kind.CONTACTS: {}, Kind.CALENDAR: {}})
    # Per kind and key, the last change: what changes_since() hands out.
    journal: dict[Kind, dict[str, CrmChange]] = field(
        default_factory=lambda: {Kind.CONTACTS: {}, Kind.CALENDAR: {}})
    companies: dict[str, tuple[str, str]] = field(default_factory=dict)   # name key -> (key, name)
    branches: dict[str, str | None] = field(default_factory=dict)         # node -> parent
    emails: dict[str, FiledMail] = field(default_factory=dict)            # in filing order

    def record_change(self, kind: Kind, key: str, deleted: bool = False) -> int:
        self.revision += 1
        self.journal[kind][key] = CrmChange(key, deleted, str(self.revision))
        return self.revision

    def branch(self, node: str) -> set[str]:
        """The node and every node below it."""
        found = {node}
        while True:
            below = {child for child, parent in self.branches.items()
                     if parent in found and child not in found}
            if not below:
                return found
            found |= below

    def company_key(self, name: str) -> str:
        """The key of the company of that name, "" if there is none."""
        found = self.companies.get(company_name_key(name))
        return found[0] if found else ""


_STORES: dict[str, Store] = {}
# Keys are unique in the process, so that a key of one organization names nothing in another.
_KEYS = itertools.count(1)


def new_key(prefix: str) -> str:
    return f"{prefix}-{next(_KEYS)}"


def store_of(organization: str) -> Store:
    return _STORES.setdefault(organization, Store())


class OnStore:
    """A part of MemoryCrm: it works on the store of its `organization`."""

    organization: str

    @property
    def _store(self) -> Store:
        return store_of(self.organization)


def forget(organization: str) -> None:
    """Drop an organization's data (a test's cleanup)."""
    _STORES.pop(organization, None)


def add_branch(organization: str, name: str, parent: str | None = None) -> str:
    """A classification node, as a CRM user makes one; its key."""
    node = new_key(f"node-{name}")
    store_of(organization).branches[node] = parent
    return node


def participants(organization: str, key: str) -> set[str]:
    """Keys of the persons taking part in the event `key`."""
    return set(store_of(organization).rows[Kind.CALENDAR][key].participants)


def email_links(organization: str, key: str) -> tuple[set[str], set[str]]:
    """Keys of the persons and of the companies the e-mail `key` is linked to."""
    email = store_of(organization).emails[key]
    return set(email.persons), set(email.companies)


def company_name_key(name: str) -> str:
    """" ACME  s.r.o." and "Acme s.r.o." are one company."""
    return " ".join(name.split()).casefold()


def photo_token(photo: bytes | None) -> str:
    return hashlib.sha256(photo).hexdigest()[:32] if photo else ""


def display_name(key: str, person: ContactRecord) -> str:
    """A person as a list shows them: the whole name, else an address."""
    parts = (person.title, person.first_name, person.middle_name, person.last_name,
             person.suffix)
    name = " ".join(p for p in parts if p)
    return name or person.email1 or person.email2 or person.email3 or f"person {key}"
