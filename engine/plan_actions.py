"""A plan and its actions: what the planner (engine/planner.py) returns for one record, and
the runner (engine/run/) carries out and records."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from engine.records import Record


class Side(enum.StrEnum):
    CRM = "crm"
    REMOTE = "remote"

@dataclass
class Write:
    """Create (key None) or update `fields` of a record on `side`, from `source`'s record."""

    side: Side
    key: str | None
    record: Record
    fields: frozenset[str]
    reason: str = ""
    # Fields among `fields` cut to what Exchange keeps (engine/fitting.py): `record` holds
    # them cut; the CRM keeps them whole.
    shortened: frozenset[str] = frozenset()


@dataclass
class Link:
    """Store the pair with what each side will look like once the writes are done."""

    crm_key: str | None          # None: the key the CRM write creates
    remote_id: str | None        # None: the id the Exchange write creates
    crm_snapshot: dict[str, Any]
    remote_snapshot: dict[str, Any]
    crm_version: str = ""
    remote_version: str = ""
    # The snapshots (CRM's, Exchange's) that are true while, or if, the plan's Exchange write
    # is not done: the fields carried into the CRM agreed on both sides, the CRM's own
    # changes still to carry. Stored with the CRM write, they keep the link true should the
    # worker die before the Exchange write; Exchange's side of them is what a refused write
    # (a meeting Graph cannot change silently) leaves there.
    before_remote: tuple[dict[str, Any], dict[str, Any]] | None = None
    # Events: whether the mailbox organizes the item as now seen (None: keep what is known).
    organizes: bool | None = None


@dataclass
class Unlink:
    reason: str
    # The survivor of a deletion stays out of sync for good (its link is kept, marked);
    # a record that only left the scope is forgotten, and matched again if it comes back.
    for_good: bool = False


@dataclass
class Leave:
    """A synced user leaves a meeting others still have: their link is forgotten and they are
    taken off the CRM record; nothing else is touched, on either side."""

    reason: str


@dataclass
class PendingDeletion:
    """Deleted on `deleted_on`; the other side's deletion waits for the mass-deletion guard."""

    deleted_on: Side
    reason: str = ""   # said when the deletion is carried out, if not the plain one


@dataclass
class Conflict:
    fields: frozenset[str]
    winner: Side
    reason: str


@dataclass
class Skip:
    reason: str


@dataclass
class Duplicate:
    """Records that may be the same: neither copied nor linked until a user decides."""

    crm_key: str
    remote_id: str
    address: str                 # what they share ("" when it is their name and company)
    reason: str = ""             # for the history; "shares <address>" when empty
    # The Exchange record's synced fields, shown beside the CRM record on the report.
    remote_fields: dict[str, Any] = field(default_factory=dict)


Action = Write | Link | Unlink | Leave | PendingDeletion | Conflict | Skip | Duplicate


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)

    def add(self, action: Action) -> Plan:
        self.actions.append(action)
        return self

    def of(self, kind: type) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]

    @property
    def writes(self) -> list[Write]:
        return self.of(Write)
