"""The executor: a batch's plans carried out on both sides — CRM writes in one short
transaction, Exchange writes (bulk, in the background while the next batch is worked on)
between transactions, photos after them — and handed over to be recorded."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction

from engine.crmstore.base import CrmUpdate
from engine.crmstore.unheld import with_exchange_values
from engine.mailbox.base import (
    ItemRef,
    MailboxBackend,
    Pending,
    Update,
    WriteResult,
    WriteStatus,
)
from engine.models import Link
from engine.plan_actions import Leave, Plan, Side
from engine.plan_actions import Link as LinkAction
from engine.records import Record
from engine.run.journal import Journal

if TYPE_CHECKING:
    from engine.agendas.base import AgendaRules
    from engine.run.recording import Recorder

# Records per batch: an EWS bulk call takes up to 100 items.
BATCH = 100


@dataclass
class Planned:
    """One record's plan and what executing it produced."""

    plan: Plan
    title: str
    crm_key: str | None = None
    remote_id: str | None = None
    link: Link | None = None
    failed: str = ""
    conflict_later: bool = False
    refused: str = ""        # Exchange will not take the write (WriteStatus.REFUSED): why
    unpark: str = ""         # the parked item (PendingItem) this plan settles, once recorded
    warnings: list[str] = field(default_factory=list)
    new_crm_version: str = ""
    new_remote: ItemRef | None = None
    crm_photo_token: str | None = None
    remote_photo_token: str | None = None


@dataclass
class RemoteWrites:
    """A batch's Exchange writes: the Planned each belongs to, and what is sent."""

    creates: list[tuple[Planned, Record]]
    updates: list[tuple[Planned, Update]]


class Executor:
    """Carries out a run's plans, a batch at a time, and hands them to the recorder."""

    def __init__(self, journal: Journal, mailbox: MailboxBackend, rules: AgendaRules,
                 recorder: Recorder) -> None:
        self.journal = journal
        self.mailbox = mailbox
        self.rules = rules
        self.recorder = recorder
        self.crm = rules.crm
        self.kind = rules.kind
        self.folder = rules.folder
        self.policy = rules.policy
        self.wrote_remote = False
        # The versions this run's CRM writes gave their records: the run's own changes,
        # which the CRM cursor it stores may pass (CrmBackend.cursor_past_own_writes).
        self.crm_versions_written: set[str] = set()
        # A batch whose Exchange writes are under way (execute with overlap).
        self._in_flight: tuple[list[Planned], RemoteWrites, Pending[Any] | None] | None = None

    def execute(self, batch: list[Planned], overlap: bool = False) -> None:
        """Carry out a batch's plans and record them. With `overlap`, its Exchange writes
        may still be under way when this returns: they are applied and recorded by the next
        batch's execute or by settle(), so the Exchange round trips of one batch overlap
        the database work of the next (a first export of thousands of contacts waited on
        Exchange and on the database in turn; bench/)."""
        if not batch:
            return
        if self.journal.dry_run:
            # A dry run writes to neither side: its plans are recorded as they stand.
            self.recorder.record_batch(batch)
            return
        # One transaction per batch, not one per record: a commit is a disk sync, and a first
        # sync of thousands of contacts spent most of its time in them (bench/). The built-in
        # CRM writes to this database, so no network I/O runs inside. A crash rolls back the
        # whole batch, as if it had come before the batch.
        # What is written to the CRM is on record in the same commit, so a crash can leave no
        # CRM write the links do not know of: plans that write only to the CRM are recorded
        # whole; the others' links are stored as they stand until their Exchange writes are
        # done (LinkAction.before_remote).
        remote = [p for p in batch if _waits_for_exchange(p)]
        local = [p for p in batch if not _waits_for_exchange(p)]
        if not remote:
            self.settle()   # history stays in the order things were done
        with transaction.atomic():
            created = self._create_crm_many(batch)
            created |= self._update_crm_many(batch, created)
            for planned in batch:
                if id(planned) not in created:
                    self._write_crm(planned)
                self.journal.point("crm write")
            if local:
                if not remote:
                    self.journal.point("remote writes")
                self.recorder.record_batch(local)
            self.recorder.links_before_remote(remote)
        if not remote:
            return
        writes = self._remote_writes(remote)
        self.settle()   # one batch's Exchange writes under way at a time, in order
        sending = self.mailbox.start(functools.partial(self._send, writes)) \
            if writes.creates or writes.updates else None
        self._in_flight = (remote, writes, sending)
        if not overlap:
            self.settle()

    def settle(self) -> None:
        """The batch whose Exchange writes are under way: their results, photos, history."""
        if self._in_flight is None:
            return
        batch, writes, sending = self._in_flight
        self._in_flight = None
        if sending is not None:
            self._apply_sent(writes, sending.result())
        self.journal.point("remote writes")
        for planned in batch:
            self._photos(planned)
        self.recorder.record_batch(batch)

    def _create_crm_many(self, batch: list[Planned]) -> set[int]:
        """The batch's new CRM records created together (a first import creates thousands);
        the ids of the Planned whose CRM writes are thereby done."""
        creates: list[tuple[Planned, Any]] = []
        for planned in batch:
            crm_writes = [w for w in planned.plan.writes if w.side is Side.CRM]
            if (not planned.failed and len(crm_writes) == 1 and crm_writes[0].key is None
                    and planned.link is None):   # re-creations go one by one (_write_crm)
                creates.append((planned, crm_writes[0]))
        if len(creates) < 2:
            return set()
        results = self.crm.create_many(self.kind, [
            (write.record, planned.remote_id or link_action(planned).remote_id or "")
            for planned, write in creates])
        return self._crm_written([planned for planned, _ in creates], results)

    def _crm_written(self, done: list[Planned], results: list[Any]) -> set[int]:
        """Each Planned's CRM write result noted on it; the ids of those Planned."""
        for planned, result in zip(done, results, strict=True):
            planned.warnings.extend(result.warnings)
            if not result.ok:
                planned.failed = result.error
                planned.conflict_later = result.conflict
                continue
            planned.crm_key = result.key
            planned.new_crm_version = result.version
            self.crm_versions_written.add(result.version)
        return {id(planned) for planned in done}

    def _update_crm_many(self, batch: list[Planned], done: set[int]) -> set[int]:
        """The batch's plain CRM updates done together (a first two-way sync fills fields of
        many linked pairs); the ids of the Planned whose CRM writes are thereby done."""
        updates: list[tuple[Planned, Any]] = []
        for planned in batch:
            crm_writes = [w for w in planned.plan.writes if w.side is Side.CRM]
            if (id(planned) not in done and not planned.failed and len(crm_writes) == 1
                    and crm_writes[0].key is not None):
                updates.append((planned, crm_writes[0]))
        if len(updates) < 2:
            return set()
        results = self.crm.update_many(self.kind, [
            CrmUpdate(write.key, write.record, write.fields - {"photo_token"},
                      self._crm_version_read(planned)) for planned, write in updates])
        return self._crm_written([planned for planned, _ in updates], results)

    def _crm_version_read(self, planned: Planned) -> str:
        """The CRM version a plan was made from: its update of the CRM names it, so a user's
        edit made since is not overwritten unseen (nor hidden behind the write's version)."""
        return link_action(planned).crm_version or (
            planned.link.crm_version if planned.link else "")

    def _write_crm(self, planned: Planned) -> None:
        for _ in planned.plan.of(Leave):
            result = self.rules.leave(planned.crm_key or "")
            if not result.ok:
                planned.failed = result.error
                return
        for write in planned.plan.writes:
            if write.side is not Side.CRM:
                continue
            if write.key is None:
                origin = planned.remote_id or link_action(planned).remote_id or ""
                # Re-creating a record deleted in the CRM (its change won): a run killed after
                # creating it may have done so already — its origin says.
                done = self.crm.find_by_origin(self.kind, [origin]).get(origin) \
                    if planned.link is not None and origin else None
                result = (self.crm.update(self.kind, done, write.record, write.fields)
                          if done else self.crm.create(self.kind, write.record, origin))
            else:
                result = self.crm.update(self.kind, write.key, write.record,
                                         write.fields - {"photo_token"},
                                         self._crm_version_read(planned))
            planned.warnings.extend(result.warnings)
            if not result.ok:
                planned.failed = result.error
                planned.conflict_later = result.conflict
                return
            planned.crm_key = result.key
            planned.new_crm_version = result.version
            self.crm_versions_written.add(result.version)

    def _remote_writes(self, batch: list[Planned]) -> RemoteWrites:
        """The batch's Exchange writes, as the records Exchange gets (database work: stamps,
        categories); a re-creation a killed run made already becomes an update."""
        creates: list[tuple[Planned, Record]] = []
        updates: list[tuple[Planned, Update]] = []
        for planned in batch:
            if planned.failed:
                continue
            for write in planned.plan.writes:
                if write.side is not Side.REMOTE:
                    continue
                crm_key = planned.crm_key or link_action(planned).crm_key or ""
                record = self.rules.outgoing(write.record, crm_key)
                if write.key is None:
                    creates.append((planned, record))
                else:
                    version = (link_action(planned).remote_version
                               or (planned.link.remote_version if planned.link else ""))
                    updates.append((planned, Update(ItemRef(write.key, version), record,
                                                    write.fields - {"photo_token"}
                                                    | {"stamp"})))
        if any(planned.link is not None for planned, _ in creates):
            creates = self._recreated_already(creates, updates)
        return RemoteWrites(creates, updates)

    def _send(self, writes: RemoteWrites) -> tuple[list[WriteResult], list[WriteResult]]:
        """Exchange I/O only: it may run in the mailbox's background thread."""
        created = self.mailbox.create(self.folder, [r for _, r in writes.creates]) \
            if writes.creates else []
        updates = [u for _, u in writes.updates]
        if updates and self.rules.left_out:
            updates = self._keeping_unheld(updates)
        updated = self.mailbox.update(self.kind, updates) if updates else []
        return created, updated

    def _keeping_unheld(self, updates: list[Update]) -> list[Update]:
        """The updates with the items' own values of the fields the CRM cannot hold, read
        from Exchange now (one read per batch): Exchange writes some fields together (a
        contact's phones, e-mail addresses and postal addresses are each one collection; an
        event's start carries its zone), and the CRM's blank would go with them. A stale
        item is still refused by its version."""
        found = self.mailbox.fetch(self.kind, [ItemRef(u.ref.id) for u in updates])
        return [dataclasses.replace(u, record=with_exchange_values(
                    u.record, current[1], self.rules.left_out))
                if isinstance(current, tuple) else u
                for u, current in zip(updates, found, strict=False)]

    def _apply_sent(self, writes: RemoteWrites,
                    results: tuple[list[WriteResult], list[WriteResult]]) -> None:
        created, updated = results
        self.wrote_remote = True
        for (planned, _), result in zip(writes.creates, created, strict=False):
            if result.ok and result.ref is not None:
                planned.new_remote = result.ref
            else:
                planned.failed = result.message
        for (planned, _), result in zip(writes.updates, updated, strict=False):
            if result.status is WriteStatus.CONFLICT:
                planned.conflict_later = True
                planned.failed = result.message
            elif result.status is WriteStatus.REFUSED:
                planned.refused = result.message
            elif result.ok and result.ref is not None:
                planned.new_remote = result.ref
            else:
                planned.failed = result.message

    def _recreated_already(self, creates: list[tuple[Planned, Record]],
                           updates: list[tuple[Planned, Update]]
                           ) -> list[tuple[Planned, Record]]:
        """Re-creating in Exchange a record deleted there (its change in the CRM won): a run
        killed after creating it may have done so already. Its stamp finds that copy, which
        is then updated instead of created twice."""
        stamps = [getattr(r, "stamp", "") for planned, r in creates if planned.link is not None]
        found = self.mailbox.find_by_stamp(self.folder, [s for s in stamps if s])
        remaining: list[tuple[Planned, Record]] = []
        for planned, record in creates:
            ref = found.get(getattr(record, "stamp", "")) if planned.link is not None else None
            if ref is None:
                remaining.append((planned, record))
            else:
                updates.append((planned, Update(ref, record, self.policy.synced_fields
                                                - {"photo_token"} | {"stamp"})))
        return remaining

    def _photos(self, planned: Planned) -> None:
        """Photos travel apart from the other fields: bytes read from one side, written to the
        other; each side's token for it goes into that side's snapshot."""
        if planned.failed:
            return
        action = link_action(planned)
        for write in planned.plan.writes:
            if "photo_token" not in write.fields:
                continue
            has_photo = bool(getattr(write.record, "photo_token", ""))
            if write.side is Side.CRM:
                if not has_photo and write.key is None:
                    planned.crm_photo_token = ""
                    continue
                source = planned.remote_id or action.remote_id or ""
                photo = self.mailbox.read_photo(ItemRef(source)) if has_photo else None
                written = self.crm.set_photo(planned.crm_key or "", photo)
                planned.crm_photo_token = written.token
                self.crm_versions_written.add(written.version)
            else:
                if not has_photo and write.key is None:
                    planned.remote_photo_token = ""
                    continue
                crm_key = planned.crm_key or action.crm_key or ""
                photo = self.crm.read_photo(crm_key) if has_photo else None
                result = self.mailbox.set_photo(planned.new_remote or ItemRef(write.key or ""),
                                                photo)
                if result.ok and result.ref is not None:
                    planned.new_remote = result.ref
                    planned.remote_photo_token = result.token
                else:
                    planned.warnings.append(f"The photo was not written: {result.message}")



def plan_has_create(plan: Plan) -> bool:
    return any(w.key is None for w in plan.writes)


def _waits_for_exchange(planned: Planned) -> bool:
    """Whether the plan is done only after Exchange I/O: writes to Exchange, or a photo
    (read from one side, written to the other after the batch's Exchange writes)."""
    return any(w.side is Side.REMOTE or "photo_token" in w.fields for w in planned.plan.writes)


def link_action(planned: Planned) -> LinkAction:
    """The plan's link of the pair (an empty one if it links nothing)."""
    links = planned.plan.of(LinkAction)
    return links[0] if links else LinkAction(None, None, {}, {})
