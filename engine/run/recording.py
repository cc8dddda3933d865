"""Recording: what each plan did, as history lines and as the links it leaves (new ones
a batch at a time), retries for what failed, duplicate candidates for a person to decide."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from engine.models import Link, RunItem
from engine.plan_actions import Conflict, Duplicate, Leave, PendingDeletion, Side, Skip, Unlink
from engine.plan_actions import Link as LinkAction
from engine.records import data_hash
from engine.run.executor import Planned, link_action, plan_has_create
from engine.run.journal import Journal
from engine.run.link_table import LinkTable
from engine.run.stamps import IdentityStamps

if TYPE_CHECKING:
    from engine.agendas.base import AgendaRules


class Recorder:
    """Records what a run's plans did: history lines, links, retries, duplicate candidates."""

    def __init__(self, journal: Journal, links: LinkTable, rules: AgendaRules,
                 stamps: IdentityStamps) -> None:
        self.journal = journal
        self.links = links
        self.rules = rules
        self.stamps = stamps
        # CRM records this run made duplicate candidates: held like those stored before (a
        # dry run stores none, and would otherwise plan to copy them).
        self.held_keys: set[str] = set()
        # Why a deletion decided in this run is carried out, where the plain "deleted in
        # Exchange" would not say it (a meeting its organizer deleted or cancelled): by link.
        self.deletion_reasons: dict[int, str] = {}
        # While a batch is recorded: its new links, written together (record_batch).
        self._new_links: dict[str, dict[str, Any]] | None = None

    def record_batch(self, batch: list[Planned]) -> None:
        # Recording is database work only: one commit for the batch's links and history.
        # Rolled back by a crash, it is found again next run (stamps, origins; ARCHITECTURE).
        with transaction.atomic(), self.journal.together():
            self._new_links = {}
            try:
                for planned in batch:
                    self._record(planned)
                    self.journal.point("link recorded")
                # Written with the batch's other new links, a few statements for the lot.
                self.links.replace_links(self._new_links)
            finally:
                self._new_links = None
            self.links.unpark([planned.unpark for planned in batch if planned.unpark])
        # Live progress for the dashboard (written after the commit, at most once a second).
        self.journal.report(done=len(batch))

    def _record(self, planned: Planned) -> None:
        plan = planned.plan
        for conflict in plan.of(Conflict):
            winner = "Exchange" if conflict.winner is Side.REMOTE else "the CRM"
            self.journal.line(RunItem.Action.CONFLICT, planned.title, planned.crm_key or "",
                              planned.remote_id or "",
                              f"{conflict.reason}; kept the values from {winner}")
        if planned.failed:
            action = RunItem.Action.CONFLICT if planned.conflict_later else RunItem.Action.ERROR
            self.journal.line(action, planned.title, planned.crm_key or "",
                              planned.remote_id or "", planned.failed + " (tried again next run)")
            self._retry_later(planned)
            return
        for write in plan.writes:
            if planned.refused and write.side is Side.REMOTE:
                # Kept as Exchange has it; the link remembers the CRM's change as carried, so
                # it is not tried again until either side changes.
                self.journal.line(RunItem.Action.SKIP, planned.title, planned.crm_key or "",
                                  planned.remote_id or "", f"{write.reason}: {planned.refused}")
                continue
            action = {(Side.CRM, True): RunItem.Action.CREATE_CRM,
                      (Side.CRM, False): RunItem.Action.UPDATE_CRM,
                      (Side.REMOTE, True): RunItem.Action.CREATE_REMOTE,
                      (Side.REMOTE, False): RunItem.Action.UPDATE_REMOTE}[
                (write.side, write.key is None)]
            fields = "" if write.key is None else ", ".join(sorted(write.fields))
            detail = write.reason + (f": {fields}" if fields else "")
            problem = getattr(write.record, "time_zone_problem", "")
            warnings = [*planned.warnings, *([f"Time zone: {problem}."] if problem else [])]
            if write.shortened:
                warnings.append(f"Shortened to fit Exchange: {', '.join(sorted(write.shortened))}"
                                "; the CRM keeps the full text.")
            if warnings:
                detail += " — " + " ".join(warnings)
            self.journal.line(action, planned.title, planned.crm_key or "",
                              (planned.new_remote.id if planned.new_remote
                               else planned.remote_id) or "", detail)
        for skip in plan.of(Skip):
            self.journal.line(RunItem.Action.SKIP, planned.title, planned.crm_key or "",
                              planned.remote_id or "", skip.reason)
        for duplicate in plan.of(Duplicate):
            self.journal.line(RunItem.Action.DUPLICATE, planned.title, duplicate.crm_key,
                              duplicate.remote_id,
                              duplicate.reason or f"shares {duplicate.address}")
            self.held_keys.add(duplicate.crm_key)
            if not self.journal.dry_run:   # the CRM's title is read for the report only
                self.links.propose(duplicate.crm_key, duplicate.remote_id,
                                   address=duplicate.address, remote_title=planned.title,
                                   remote_fields=duplicate.remote_fields,
                                   crm_title=self._crm_title(duplicate.crm_key))
        for leave in plan.of(Leave):
            self.journal.line(RunItem.Action.UNLINK, planned.title, planned.crm_key or "",
                              planned.remote_id or "", leave.reason)
            if planned.link is not None:
                self.links.forget(planned.link)
        for unlink in plan.of(Unlink):
            self.journal.line(RunItem.Action.UNLINK, planned.title, planned.crm_key or "",
                              planned.remote_id or "", unlink.reason)
            if planned.link is not None:
                if unlink.for_good:
                    self.links.set_state(planned.link, Link.State.UNLINKED)
                else:
                    self.links.forget(planned.link)
        for pending in plan.of(PendingDeletion):
            state = (Link.State.CRM_DELETED if pending.deleted_on is Side.CRM
                     else Link.State.REMOTE_DELETED)
            if planned.link is not None:
                self.links.set_state(planned.link, state)
                if pending.reason:
                    self.deletion_reasons[planned.link.pk] = pending.reason
            if self.journal.dry_run:   # nothing waits for the guard: listed now
                action = (RunItem.Action.DELETE_REMOTE if pending.deleted_on is Side.CRM
                          else RunItem.Action.DELETE_CRM)
                self.journal.line(action, planned.title, planned.crm_key or "",
                                  planned.remote_id or "",
                                  pending.reason or "deleted on the other side")
        for pairing in plan.of(LinkAction):
            self._save_link(planned, pairing)

    def _retry_later(self, planned: Planned) -> None:
        action = link_action(planned)
        for side, key in (("crm", planned.crm_key or action.crm_key),
                          ("remote", planned.remote_id or action.remote_id)):
            if key:
                self.links.retry_later(side, key, planned.failed)

    def _save_link(self, planned: Planned, action: LinkAction) -> None:
        if self.journal.dry_run:   # no link kept: the pair it would make is listed
            if planned.link is None and not plan_has_create(planned.plan):
                self.journal.line(RunItem.Action.LINK, planned.title, action.crm_key or "",
                                  action.remote_id or "")
            return
        crm_key = planned.crm_key or action.crm_key
        remote = planned.new_remote
        remote_id = remote.id if remote else (action.remote_id or planned.remote_id)
        if not crm_key or not remote_id:
            return
        crm_snapshot = dict(action.crm_snapshot)
        remote_snapshot = dict(action.remote_snapshot if not planned.refused
                                or action.before_remote is None else action.before_remote[1])
        if planned.crm_photo_token is not None:
            crm_snapshot["photo_token"] = planned.crm_photo_token
        if planned.remote_photo_token is not None:
            remote_snapshot["photo_token"] = planned.remote_photo_token
        link = planned.link
        values = _link_values(
            planned, crm_key, remote_id, crm_snapshot, remote_snapshot,
            crm_version=planned.new_crm_version or action.crm_version
            or (link.crm_version if link else ""),
            remote_version=(remote.version if remote else "") or action.remote_version
            or (link.remote_version if link else ""),
            organizes=_organizes(action, link))
        self.stamps.owe(planned.plan, crm_key, remote_id, values["remote_version"])
        if link is None and self._new_links is not None:
            # Written with the batch's other new links (record_batch).
            self._new_links[crm_key] = values
            if not plan_has_create(planned.plan):
                self.journal.line(RunItem.Action.LINK, planned.title, crm_key, remote_id,
                                  "the same record on both sides")
            return
        with transaction.atomic():
            if link is not None:
                if all(getattr(link, name) == value for name, value in values.items()):
                    return   # nothing new to remember (e.g. our own write read back)
                for name, value in values.items():
                    setattr(link, name, value)
                link.save()
            else:
                self.links.store_link(crm_key, values)
                if not plan_has_create(planned.plan):
                    self.journal.line(RunItem.Action.LINK, planned.title, crm_key, remote_id,
                                      "the same record on both sides")

    def links_before_remote(self, batch: list[Planned]) -> None:
        """The links of plans whose CRM writes are done and whose Exchange writes are not yet:
        as LinkAction.before_remote says, with the versions they had (so that both records
        are looked at again next time, should the Exchange writes never happen). Saved in
        the CRM writes' transaction; _save_link replaces them once the writes are done."""
        fresh: list[Link] = []
        changed: list[Link] = []
        for planned in batch:
            action = link_action(planned)
            crm_key = planned.crm_key or action.crm_key
            remote_id = action.remote_id or planned.remote_id
            if (planned.failed or action.before_remote is None or not crm_key or not remote_id
                    or not any(w.side is Side.CRM for w in planned.plan.writes)):
                continue
            link = planned.link
            values = _link_values(planned, crm_key, remote_id, *action.before_remote,
                                  crm_version=link.crm_version if link else "",
                                  remote_version=link.remote_version if link else "",
                                  organizes=_organizes(action, link))
            if link is None:
                fresh.append(self.links.new_link(**values))
            else:
                # A copy: planned.link keeps what the plan was made from.
                changed.append(Link(pk=link.pk, **values))
        self.links.save_many(fresh, changed, sorted(LINK_STATE_FIELDS))


    def _crm_title(self, key: str) -> str:
        fetched = self.rules.crm.fetch(self.rules.kind, [key]).get(key)
        return self.rules.title(fetched.record) if fetched else key


# What a link knows of the pair, as _link_values() gives it.
LINK_STATE_FIELDS = frozenset({"crm_key", "remote_id", "crm_version", "remote_version",
                               "crm_snapshot", "remote_snapshot", "crm_hash", "remote_hash",
                               "state", "title", "remote_uid", "organizes"})


def _organizes(action: LinkAction, link: Link | None) -> bool | None:
    """Whether the mailbox organizes the linked event: as now seen, else as known."""
    if action.organizes is not None:
        return action.organizes
    return link.organizes if link is not None else None


def _link_values(planned: Planned, crm_key: str, remote_id: str, crm_snapshot: dict[str, Any],
                 remote_snapshot: dict[str, Any], *, crm_version: str,
                 remote_version: str, organizes: bool | None) -> dict[str, Any]:
    crm_hash = data_hash(crm_snapshot)
    return {
        "crm_key": crm_key, "remote_id": remote_id,
        "crm_version": crm_version, "remote_version": remote_version,
        "crm_snapshot": crm_snapshot, "remote_snapshot": remote_snapshot,
        "crm_hash": crm_hash,
        # After a create or a match both sides usually hold the same data: hashed once.
        "remote_hash": crm_hash if remote_snapshot == crm_snapshot
        else data_hash(remote_snapshot),
        "state": Link.State.ACTIVE, "title": planned.title[:255],
        "remote_uid": str(remote_snapshot.get("uid") or "")[:512],
        "organizes": organizes,
    }

