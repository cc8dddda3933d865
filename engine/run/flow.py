"""The order of a two-way run of one profile's agenda, from reading changes to the history.

Order of a run (contacts; ARCHITECTURE §2):
1. claim the lease; note the CRM's current revision;
2. read Exchange's changes page by page; per page plan, write, link, record, and only then
   store the page's sync state (the checkpoint);
   new unlinked Exchange items are parked (PendingItem) until the whole folder is read;
3. match the parked items (stamps, then e-mail addresses unique on both sides and names
   that agree) or create them in the CRM, or list them as duplicate candidates (as are
   contacts without an address sharing name and company with a CRM person);
4. the CRM's changes since the stored cursor, in batches; then store the cursor noted in 1,
   moved past the changes that are only this run's own CRM writes (never past another's);
   (after a profile's first run, new items are created only once all are counted: the
   mass-creation guard holds them, parked, when there are more than the profile allows);
5. deletions waiting to be carried over: the mass-deletion guard, then delete;
6. if this run wrote to Exchange, read Exchange's changes once more: they are this run's own
   writes (no-ops that move the sync state past them, so the next run asks one request).

No network I/O runs inside a database transaction: writes to Exchange happen between the short
transactions that record them. A crash anywhere leaves what is needed to finish next time:
items written to Exchange carry the CRM key (identity stamp), records created in the CRM carry
the Exchange item id (origin), and states advance only after what they cover is recorded.

The parts, one module each: the journal (the Run row, lease, history), the link table, reading
Exchange (reading.py), the executor, recording, the mass guards and identity stamps; what the
agenda says (scope, fields, matching) is a rules object (engine/agendas/).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from engine import folder_move
from engine.agendas.base import AgendaRules, WindowEntries
from engine.crmstore.base import CrmItemError, CrmRecord
from engine.mailbox.base import (
    ChangeType,
    ItemChange,
    ItemError,
    ItemRef,
    MailboxBackend,
    MailboxError,
)
from engine.models import DuplicateCandidate, FolderState, Link, Run, RunItem
from engine.plan_actions import Plan, Side
from engine.planner import Known, Seen, plan_linked, plan_match, plan_new
from engine.records import Record
from engine.run.crm_changes import PendingCrmChanges
from engine.run.executor import BATCH, Executor, Planned, plan_has_create
from engine.run.guards import MassGuards
from engine.run.journal import Journal
from engine.run.link_table import link_table
from engine.run.reading import ExchangeReading
from engine.run.recording import Recorder
from engine.run.stamps import IdentityStamps

log = logging.getLogger(__name__)

# Changes asked of Exchange per page: nearly the most SyncFolderItems returns (512), in
# whole batches, so that each of a page's GetItem and UpdateItem requests carries a full BATCH.
READ_PAGE_SIZE = 5 * BATCH


class TwoWaySync(ExchangeReading, MassGuards):
    """One two-way run of one agenda. The agenda's rules say what is in scope, how records
    are matched and how they look on each side; everything else (order, batching,
    checkpoints, history, crash safety) is the same for every agenda. Its parts: the
    journal, the link table, the executor (with its recorder) and the identity stamps;
    reading Exchange and the mass guards are steps of the run itself (reading.py,
    guards.py)."""

    def __init__(self, rules: AgendaRules, mailbox: MailboxBackend, *,
                 dry_run: bool = False, trigger: str = "manual",
                 checkpoint: Callable[[str], None] | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.rules = rules
        self.profile = rules.profile
        self.agenda = rules.agenda
        self.kind = rules.kind
        self.mailbox = mailbox
        self.crm = rules.crm
        self.settings = rules.settings
        self.policy = rules.policy
        self.folder = rules.folder
        self.journal = Journal(self.profile, self.agenda, dry_run=dry_run, trigger=trigger,
                               checkpoint=checkpoint, progress=progress)
        self.links = link_table(self.profile, self.agenda, dry_run=dry_run)
        self.stamps = IdentityStamps(self.journal, self.links, mailbox, self.crm, self.kind,
                                     settle=lambda: self.executor.settle())
        self.recorder = Recorder(self.journal, self.links, rules, self.stamps)
        self.executor = Executor(self.journal, mailbox, rules, self.recorder)
        # Exchange written to by the run's own steps (items moved to a new folder, deletions).
        self._wrote_remote = False
        # Records of the items parked by this run's read, kept so matching them need not
        # fetch them a second time (a first import would read every contact twice). Items
        # parked by an earlier, interrupted run are not here and are fetched as before.
        self._parked_records: dict[str, tuple[ItemRef, Record]] = {}
        # CRM records this run created from new Exchange items while reading: not partners
        # for the items read after them (matching looks at the CRM as the run found it).
        self._imported_keys: set[str] = set()
        self.state: FolderState | None = None
        # The mass-creation guard (_creations_held): a profile's first run is never held;
        # the sides (where records would be created) this run holds.
        self._first_run = True
        self._held_sides: set[Side] = set()
        # CRM records the CRM could not give this run (CrmItemError): neither records nor
        # deletions; each is recorded as an error and looked at again next run.
        self._unreadable: set[str] = set()
        self._pending: PendingCrmChanges | None = None

    @property
    def wrote_remote(self) -> bool:
        """Whether this run wrote to Exchange (its writes come back as changes)."""
        return self._wrote_remote or self.executor.wrote_remote or self.stamps.wrote_remote

    @property
    def run_record(self) -> Run | None:
        return self.journal.run

    def run(self) -> Run:
        return self.journal.conduct(self._sync, lambda: self.mailbox.requests_made)

    def _sync(self) -> bool:
        state = self.links.folder_state(self.folder.id)
        self.state = state
        if not self.journal.dry_run:   # a dry run moves nothing
            self._follow_folder()
        self._first_run = self._is_first_run(state)
        cursor_now = self.crm.current_cursor()
        pending = PendingCrmChanges(self.crm.changes_since(self.kind, state.crm_cursor))
        self._pending = pending
        self.journal.say(f"{len(pending)} CRM changes to look at")
        self._retries(pending)
        self._apply_decisions(pending)

        read_from_scratch = not state.remote_state
        remote_state = self._read_remote(state, state.remote_state or None, pending)
        window = self.rules.window_entries(state, self.mailbox, read_from_scratch)
        if window is not None:
            self._window_entries(window, pending)
        self._match_parked(pending)
        self.stamps.write_due()
        unchanged = self._linked_as_is(pending)
        keys = [key for key in pending if key not in unchanged]
        self._creations_held(Side.REMOTE, lambda: self._new_in_crm(keys, pending))
        self.journal.report(more=len(keys))
        for start in range(0, len(keys), BATCH):
            self._crm_batch(keys[start:start + BATCH])
            self.journal.renew()
        self.executor.settle()
        self.stamps.write_due()
        self.stamps.backfill(self.state)
        # Held creations are CRM changes not carried out: the cursor stays before them.
        if Side.REMOTE not in self._held_sides:
            # Past this run's own CRM writes, as the Exchange state is past its own writes
            # (step 6): else the next run reads each back and checks it against its link,
            # and a run with nothing changed costs more the more the first one wrote.
            self.links.save_state(state, crm_cursor=self.crm.cursor_past_own_writes(
                self.kind, cursor_now, self.executor.crm_versions_written))
        waiting = self._deletions()
        if self.wrote_remote:
            # Our own writes come back as changes: read them now, as no-ops.
            self._read_remote(state, remote_state, PendingCrmChanges())
        if window is not None:
            # Only now: the CRM records the window brought waited in memory, so a run
            # killed before this reads the window again.
            self.links.save_state(state, window_checked=window.day)
        return waiting or bool(self._held_sides)

    def _window_entries(self, window: WindowEntries, pending: PendingCrmChanges) -> None:
        """Records that came into scope without changing: the CRM's are looked at with its
        changes, Exchange's as a read's, a page at a time."""
        for key in window.crm_keys:
            pending.look_again(key)
        changes = [ItemChange(ChangeType.UPSERT, ref, record) for ref, record in window.items]
        for start in range(0, len(changes), BATCH):
            self._handle_changes(changes[start:start + BATCH], [], pending)

    def _follow_folder(self) -> None:
        """A newly chosen folder: the synced items move into it first (engine/folder_move)."""
        def moved(link: Link, detail: str) -> None:
            self.journal.line(RunItem.Action.UPDATE_REMOTE, link.title, link.crm_key,
                              link.remote_id, detail)

        followed = folder_move.follow_folder(self.profile.pk, self.agenda, self.kind,
                                             self.folder, self.mailbox, moved)
        if followed is None:
            return
        self._wrote_remote = self._wrote_remote or followed.moved > 0
        if followed.failed:
            raise MailboxError(
                f"{followed.failed} synced items could not be moved into “{self.folder.path}”, "
                "the agenda's new folder; they stay linked where they are, and the next run "
                "tries again.")

    def _apply_decisions(self, pending: PendingCrmChanges) -> None:
        """Carry out what users decided on duplicate candidates since the last run: links
        first (which closes the pair's other candidacies), then the pairs kept apart."""
        linked, apart = DuplicateCandidate.Decision.LINKED, DuplicateCandidate.Decision.APART
        decided = self.links.decided([linked, apart])   # one query when there are none
        to_link = [candidate for candidate in decided if candidate.decision == linked]
        for candidate in to_link:
            self._apply_decision(candidate, pending)
        # A link closes the pair's other candidacies (kept apart now): read them anew then.
        for candidate in (self.links.decided([apart]) if to_link
                          else [c for c in decided if c.decision == apart]):
            self._apply_decision(candidate, pending)

    def _apply_decision(self, candidate: DuplicateCandidate, pending: PendingCrmChanges) -> None:
        (result,) = self.mailbox.fetch(self.kind, [ItemRef(candidate.remote_id)])
        crm = self._crm_seen([candidate.crm_key]).get(candidate.crm_key)
        if candidate.crm_key in self._unreadable:
            return   # decided again next run, when the record can be read
        linked = bool(self.links.by_crm_key([candidate.crm_key]))
        if isinstance(result, ItemError) or crm is None:
            pass   # one of them is gone: nothing left to decide
        elif candidate.decision == DuplicateCandidate.Decision.LINKED:
            if not linked and not self.links.by_remote_id([result[0].id]):
                remote = Seen(result[0].id, result[0].version, result[1],
                              modified=getattr(result[1], "modified", None))
                self.executor.execute([self._planned(plan_match(crm, remote, self.policy), None,
                                             candidate.remote_title)])
                pending.take(candidate.crm_key)
                self.links.close_candidacies(candidate.crm_key, candidate.remote_id)
        else:
            # Kept apart: both are looked at again as new records, this pair excluded.
            if not self.links.by_remote_id([result[0].id]):
                self._park([(result[0], result[1])])
            if not linked:
                pending.look_again(candidate.crm_key)
        self.links.mark_applied(candidate)

    def _retries(self, pending: PendingCrmChanges) -> None:
        """Records whose writes failed last time are looked at again, as if changed."""
        retries = self.links.retries()
        if not retries:
            return
        for retry in retries:
            if retry.side == "crm":
                pending.look_again(retry.key)
        remote_ids = [r.key for r in retries if r.side == "remote"]
        self.links.drop_retries(retries)
        for start in range(0, len(remote_ids), BATCH):
            changes, errors = [], []
            for ref, result in zip([ItemRef(i) for i in remote_ids[start:start + BATCH]],
                                   self.mailbox.fetch(self.kind, [ItemRef(i) for i in
                                                                  remote_ids[start:start + BATCH]]),
                                   strict=False):
                if isinstance(result, ItemError):
                    if result.code == "ErrorItemNotFound":
                        changes.append(ItemChange(ChangeType.DELETE, ref))
                    else:
                        errors.append(result)
                else:
                    changes.append(ItemChange(ChangeType.UPSERT, result[0], result[1]))
            self._handle_changes(changes, errors, pending)

    def _read_remote(self, state: FolderState, remote_state: str | None,
                     pending: PendingCrmChanges) -> str | None:
        # A read from scratch handles every item of the folder, a page at a time: the
        # folder's size, known up front, is the total the progress shows (else a first read
        # of 300 contacts said "100 of 100", then "200 of 200"). Pages beyond it add to it,
        # and the end of the read sets it to what the pages held.
        announced = self._folder_size() if remote_state is None else 0
        self.journal.report(more=announced)
        counted = 0
        # Pages nearly as large as Exchange lists (their items still fetched, planned,
        # written and stamped a BATCH at a time): a first import of 10,000 contacts listed
        # them in 100 SyncFolderItems requests of 100, where 20 of 500 do. A page's state is
        # stored once all of it is handled, so a crash repeats at most that page.
        for page in self.mailbox.read_changes(self.folder, remote_state,
                                              page_size=READ_PAGE_SIZE,
                                              known=self.links.known_versions):
            counted += sum(1 for c in page.changes
                           if c.record is not None or c.type is ChangeType.DELETE)
            if counted > announced:
                self.journal.report(more=counted - announced)
                announced = counted
            errors = page.errors
            for start in range(0, max(len(page.changes), 1), BATCH):
                self._handle_changes(page.changes[start:start + BATCH], errors, pending)
                errors = []
                # This batch's stamps are answered while the next batch is planned and
                # written to the CRM; the page's last ones before its state is stored.
                self.stamps.write_due(at_least=BATCH, overlap=True)
                self.journal.point("remote batch handled")
            # All stamps written before the next page is listed (IdentityStamps._write).
            self.stamps.write_due()
            remote_state = page.state
            self.links.save_state(state, remote_state=page.state)
            self.journal.point("remote page checkpointed")
            self.journal.renew()
        self.journal.report(more=counted - announced)
        return remote_state

    def _folder_size(self) -> int:
        try:
            return self.mailbox.count_items(self.folder) or 0
        except MailboxError:
            # Only the progress needed it: the read says what is wrong with the folder.
            # Its words only: the traceback would carry the server's own answer.
            log.info("Could not count the items of %s", self.folder.path)
            return 0

    def _linked_as_is(self, pending: PendingCrmChanges) -> set[str]:
        """CRM changes whose revision is the version their link holds: this run's or an
        earlier run's own writes. Told apart by one query per 500, without fetching the
        records: the run after a first import of thousands of contacts took seconds reading
        them all back (bench/). The built-in CRM's version is its change revision; any
        later change has a higher one, so an equal version means unchanged."""
        return self.links.unchanged_in_crm(pending.versions())

    def _crm_batch(self, keys: Sequence[str]) -> None:
        links = self.links.by_crm_key(keys)
        seen = self._crm_seen(keys)
        held = self.recorder.held_keys | self.links.held_as_candidates(list(keys))
        batch: list[Planned] = []
        for key in keys:
            if key in self._unreadable:
                continue
            link = links.get(key)
            crm = seen.get(key) or Seen(key, "", None)
            if link is not None:
                if link.state != Link.State.ACTIVE or (crm.record is not None
                                                       and crm.version == link.crm_version):
                    continue   # deletion already decided, or our own write read back
                known = self._known(link)
                if crm.record is None:   # deleted; Exchange unchanged: is it still in scope?
                    known.in_scope = self.rules.snapshot_in_scope(link.remote_snapshot)
                batch.append(self._planned(plan_linked(known, crm, None,
                                                       self.policy), link))
            elif crm.record is not None and key not in held:
                planned = self._planned(plan_new(Side.CRM, crm, self.policy), None,
                                        self.rules.title(crm.record))
                if Side.REMOTE in self._held_sides and plan_has_create(planned.plan):
                    self._hold_creation(planned)
                    continue
                batch.append(planned)
        self.executor.execute(batch, overlap=True)

    def _planned(self, plan: Plan, link: Link | None, title: str = "") -> Planned:
        return Planned(plan, title or (link.title if link else ""),
                       crm_key=link.crm_key if link else None,
                       remote_id=link.remote_id if link else None, link=link)

    def _crm_seen(self, keys: Iterable[str]) -> dict[str, Seen]:
        keys = [k for k in keys if k]
        if not keys:
            return {}
        records: dict[str, CrmRecord] = self.crm.fetch(self.kind, keys)
        self._set_aside(self.crm.fetch_failures())
        in_scope = self.rules.crm_in_scope(records)
        return {key: Seen(key, r.version, r.record, in_scope=key in in_scope,
                          modified=r.modified) for key, r in records.items()}

    def _set_aside(self, failures: Sequence[CrmItemError]) -> None:
        """Records the CRM could not give (malformed, a server error on one): an error line
        each, a retry next run, and not looked at again in this one."""
        for failure in failures:
            if failure.key in self._unreadable:
                continue
            self._unreadable.add(failure.key)
            self.journal.line(RunItem.Action.ERROR, failure.key, crm_key=failure.key,
                              detail=failure.message)
            self.links.retry_later("crm", failure.key, failure.message)
            if self._pending is not None:
                self._pending.take(failure.key)

    @staticmethod
    def _known(link: Link, shared: set[str] | frozenset[str] = frozenset()) -> Known:
        return Known(link.crm_key, link.crm_version, link.crm_hash, link.crm_snapshot,
                     link.remote_id, link.remote_version, link.remote_hash, link.remote_snapshot,
                     organizes=link.organizes, shared=link.crm_key in shared)

    def _crm_title(self, key: str) -> str:
        fetched = self.crm.fetch(self.kind, [key]).get(key)
        return self.rules.title(fetched.record) if fetched else key
