"""The mass-deletion and mass-creation guards, and the deletions they let through."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.mailbox.base import (
    ItemRef,
    WriteStatus,
)
from engine.models import FolderState, Link, RunItem
from engine.plan_actions import Side
from engine.run.crm_changes import PendingCrmChanges
from engine.run.executor import BATCH, Planned, link_action
from engine.run.parts import RunPart

if TYPE_CHECKING:
    pass


class MassGuards(RunPart):
    """More deletions or creations than a profile allows wait for an administrator."""

    def _deletions(self) -> bool:
        waiting = self.links.waiting_deletions()
        count = waiting.count()
        if not count:
            return False
        total = self.links.synced_count()
        too_many = (count > self.profile.mass_delete_min_items
                    and count * 100 > self.profile.mass_delete_min_percent * total)
        if too_many and not self.journal.approved():
            self.journal.say(f"{count} deletions wait for an administrator's approval")
            for link in waiting:
                self.journal.line(RunItem.Action.PENDING_DELETE, link.title, link.crm_key,
                                  link.remote_id,
                                  "more deletions than the mass-deletion guard allows")
            return True
        if self.journal.dry_run:   # listed, not carried out
            for link in waiting:
                action = (RunItem.Action.DELETE_REMOTE if link.state == Link.State.CRM_DELETED
                          else RunItem.Action.DELETE_CRM)
                self.journal.line(action, link.title, link.crm_key, link.remote_id)
            return False
        remote_doomed = list(waiting.filter(state=Link.State.CRM_DELETED))
        for start in range(0, len(remote_doomed), BATCH):
            chunk = remote_doomed[start:start + BATCH]
            results = self.mailbox.delete(self.kind, [ItemRef(link.remote_id) for link in chunk])
            self._wrote_remote = True
            for link, result in zip(chunk, results, strict=False):
                if result.ok:
                    self.links.forget(link)
                    self.journal.line(RunItem.Action.DELETE_REMOTE, link.title, link.crm_key,
                                      link.remote_id, "deleted in the CRM")
                elif result.status is WriteStatus.REFUSED:
                    # Exchange keeps it, no longer synced.
                    self.links.set_state(link, Link.State.UNLINKED)
                    self.journal.line(RunItem.Action.SKIP, link.title, link.crm_key, link.remote_id,
                                      f"deleted in the CRM: {result.message}")
                else:
                    self.journal.line(RunItem.Action.ERROR, link.title, link.crm_key,
                                      link.remote_id, result.message)
            self.journal.point("remote deletions done")
        for link in waiting.filter(state=Link.State.REMOTE_DELETED):
            result = self.crm.delete(self.kind, link.crm_key)
            if result.ok:
                reason = self.recorder.deletion_reasons.get(link.pk, "deleted in Exchange")
                self.links.forget(link)
                self.journal.line(RunItem.Action.DELETE_CRM, link.title, link.crm_key,
                                  link.remote_id, reason)
            else:
                self.journal.line(RunItem.Action.ERROR, link.title, link.crm_key, link.remote_id,
                                  result.error)
            self.journal.point("crm deletion done")
        return False

    def _is_first_run(self, state: FolderState) -> bool:
        """A profile's first run copies what each side holds: the mass-creation guard lets it
        create everything. So do a run from a fresh state (after a force resync, or into a
        newly chosen folder) and the runs after a first one that did not finish."""
        if not state.remote_state and not state.crm_cursor:
            return True
        return not self.journal.completed_before()

    def _creations_held(self, side: Side, count: Callable[[], int]) -> bool:
        """Whether this run holds the records it would create on `side`: more than the
        profile allows, in a run other than its first, and not approved. Counted (`count`)
        only when it matters."""
        source = Side.REMOTE if side is Side.CRM else Side.CRM
        if self._first_run or not self.policy.accepts(source):
            return False
        found = count()
        if found <= self.profile.mass_create_min_items or self.journal.approved():
            return False
        where = "the CRM" if side is Side.CRM else "Exchange"
        self.journal.say(f"{found} creations in {where} wait for an administrator's approval")
        self._held_sides.add(side)
        return True

    def _hold_creation(self, planned: Planned) -> None:
        """A creation the guard holds: listed; what would be created is looked at again by
        the next run (a parked Exchange item stays parked; a CRM record is retried)."""
        action = link_action(planned)
        self.journal.line(RunItem.Action.PENDING_CREATE, planned.title, action.crm_key or "",
                          action.remote_id or "",
                          "more creations than the mass-creation guard allows")
        if action.crm_key:
            # Also records that came into scope without changing (calendar: the window moved).
            self.links.retry_unless_waiting("crm", action.crm_key,
                                            "held by the mass-creation guard")

    def _new_in_crm(self, keys: list[str], pending: PendingCrmChanges) -> int:
        """How many of these CRM changes are records _crm_batch would create in Exchange:
        unlinked, not held as duplicate candidates, existing and in scope."""
        fresh = [key for key in keys if not pending.is_deletion(key)]
        taken: set[str] = set()
        for start in range(0, len(fresh), 500):
            chunk = fresh[start:start + 500]
            taken.update(self.links.linked_crm_keys(chunk))
            taken.update(self.links.held_as_candidates(chunk))
        new = [key for key in fresh if key not in taken]
        if len(new) <= self.profile.mass_create_min_items:
            return len(new)   # not too many even if all were: no need to read them
        return sum(sum(1 for seen in self._crm_seen(new[start:start + BATCH]).values()
                       if seen.in_scope and seen.record is not None)
                   for start in range(0, len(new), BATCH))
