"""The rules of an agenda, as the two-way sync asks for them; the defaults are the plainest."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from engine.crmstore.base import CrmBackend, CrmRecord, CrmWrite
from engine.mailbox.base import FolderInfo, ItemRef, MailboxBackend
from engine.mailbox.limits import exchange_limits
from engine.models import FolderState
from engine.plan_actions import Side
from engine.planner import ConflictPolicy, DeletionPolicy, Direction, Policy, snapshot
from engine.records import Kind, Record
from engine.run.link_table import LinkTable
from profiles.models import SyncProfile


@dataclass
class WindowEntries:
    """Records that came into scope without changing (the calendar's window moved)."""

    crm_keys: list[str]                       # unlinked CRM records now in scope
    items: list[tuple[ItemRef, Record]]       # Exchange items now in scope, not linked
    day: dt.date                              # the day the window was read for


class AgendaRules:
    """What one agenda of one profile says: its settings and policy, what is in scope, how
    records are matched and how they look on each side."""

    agenda: str
    kind: Kind
    synced_fields: frozenset[str]
    # Fields of the agenda's records the CRM cannot hold (engine/crmstore/unheld.py).
    left_out: frozenset[str] = frozenset()

    def __init__(self, profile: SyncProfile, crm: CrmBackend) -> None:
        self.profile = profile
        self.crm = crm
        self.settings = self.agenda_settings()
        self.links = LinkTable(profile, self.agenda)
        self.policy = Policy(
            direction=Direction(self.settings.direction),
            conflict=ConflictPolicy(profile.conflict_policy),
            deletion=DeletionPolicy(self.settings.deletion_policy),
            synced_fields=self.synced_fields, one_way=self.one_way_fields(),
            remote_limits=exchange_limits(self.kind))
        self.folder = FolderInfo(id=self.settings.folder_id, path=self.settings.folder_path,
                                 kind=self.kind)

    def agenda_settings(self) -> Any:
        raise NotImplementedError

    def one_way_fields(self) -> dict[str, Side]:
        """Fields carried from one side only (the other side's changes to them are ignored)."""
        return {}

    def remote_in_scope(self, record: Record) -> bool:
        return True

    def incoming(self, record: Record) -> Record:
        """An Exchange record in the CRM's terms (e.g. categories through the pairings)."""
        return record

    def outgoing(self, record: Record, crm_key: str) -> Record:
        """A record as written to Exchange: stamped with its CRM key."""
        return dataclasses.replace(record, stamp=self.crm.stamp(self.kind, crm_key))

    def match_keys(self, record: Record) -> list[str]:
        """What may identify the same record on the other side (e-mail addresses...)."""
        return []

    def crm_candidates(self, keys: list[str]) -> dict[str, list[str]]:
        """CRM records sharing each match key."""
        return {}

    def describe_key(self, key: str) -> str:
        return key

    def candidate_fields(self, record: Record) -> dict[str, Any]:
        """What a duplicate candidate keeps of the Exchange item, for the report to show
        beside the CRM record: its synced fields."""
        return snapshot(record, self.policy)

    def doubt(self, key: str, crm: Record | None, remote: Record | None) -> str:
        """Why a CRM record and an Exchange item sharing `key` may still be different
        records ("" if they may not): then even a unique match is only a candidate."""
        return ""

    def window_entries(self, state: FolderState, mailbox: MailboxBackend,
                       read_from_scratch: bool) -> WindowEntries | None:
        """Records that came into scope without changing, if it is time to look for them."""
        return None

    def title(self, record: Record | None) -> str:
        return getattr(record, "subject", "") or ""

    def snapshot_in_scope(self, snapshot: dict[str, Any]) -> bool:
        """Whether a side as its link remembers it (canonical data) is in scope now: asked
        when the other side is deleted and this one was not read (calendar: the window)."""
        return True

    def crm_in_scope(self, records: dict[str, CrmRecord]) -> set[str]:
        """Which of these CRM records the profile syncs."""
        return self.crm.in_scope(self.kind, list(records))

    def shared_keys(self, crm_keys: list[str]) -> set[str]:
        """Which of these CRM records other synced users' items are linked to as well, so
        that one user's deletion is theirs alone (calendar: a meeting several attend)."""
        return set()

    def leave(self, crm_key: str) -> CrmWrite:
        """Take this profile's user off a CRM record others still sync (a planner Leave)."""
        raise NotImplementedError(f"The {self.agenda} agenda has no shared records to leave.")
