"""The runner: one sync run of one profile's agenda, from reading changes to the history.

Order of a run (contacts; ARCHITECTURE §2):
1. claim the lease; note the CRM's current revision;
2. read Exchange's changes page by page; per page plan, write, link, record, and only then
   store the page's sync state (the checkpoint);
   new unlinked Exchange items are parked (PendingItem) until the whole folder is read;
3. match the parked items (stamps, then e-mail addresses unique on both sides and names
   that agree) or create them in the CRM, or list them as duplicate candidates (as are
   contacts without an address sharing name and company with a CRM person);
4. the CRM's changes since the stored cursor, in batches; then store the cursor noted in 1;
   (after a profile's first run, new items are created only once all are counted: the
   mass-creation guard holds them, parked, when there are more than the profile allows);
5. deletions waiting to be carried over: the mass-deletion guard, then delete;
6. if this run wrote to Exchange, read Exchange's changes once more: they are this run's own
   writes (no-ops that move the sync state past them, so the next run asks one request).

No network I/O runs inside a database transaction: writes to Exchange happen between the short
transactions that record them. A crash anywhere leaves what is needed to finish next time:
items written to Exchange carry the CRM key (identity stamp), records created in the CRM carry
the Exchange item id (origin), and states advance only after what they cover is recorded.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import InterfaceError, OperationalError, connection, models, transaction
from django.utils import timezone

from engine import folder_move, leases, matching, progress
from engine.crmstore.base import CrmBackend, CrmChange, CrmRecord, CrmUpdate, CrmWrite
from engine.mailbox.base import (
    ChangePage,
    ChangeType,
    FolderInfo,
    ItemChange,
    ItemError,
    ItemRef,
    MailboxBackend,
    MailboxError,
    Pending,
    Sought,
    Update,
    WriteResult,
    WriteStatus,
    internal_error,
)
from engine.models import (
    Agenda,
    DuplicateCandidate,
    FolderState,
    Link,
    PendingItem,
    Retry,
    Run,
    RunItem,
)
from engine.planner import (
    Conflict,
    ConflictPolicy,
    DeletionPolicy,
    Direction,
    Duplicate,
    Known,
    Leave,
    PendingDeletion,
    Plan,
    Policy,
    Seen,
    Side,
    Skip,
    Unlink,
    plan_linked,
    plan_match,
    plan_new,
    snapshot,
)
from engine.planner import Link as LinkAction
from engine.records import ContactRecord, Kind, Record, data_hash
from profiles.models import SyncProfile

log = logging.getLogger(__name__)

BATCH = 100
# At most this many parked records are kept in memory for matching (the rest are fetched
# again): ~2 kB each, so a first import of a huge mailbox stays within tens of MB.
PARKED_IN_MEMORY = 10_000
# A database restarted or failed over mid-run is back within seconds: the run's end is
# recorded on a new connection, tried this many times a second apart.
RECORD_ATTEMPTS = 30
CONTACT_SYNCED = frozenset(f.name for f in dataclasses.fields(ContactRecord)) - {
    "display_name", "categories", "stamp", "modified"}


class Killed(BaseException):
    """Raised by a test's crash hook: like a worker killed mid-run, nothing below catches it."""


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


class AgendaSync:
    """One run of one agenda. Subclasses say what is in scope, how records are matched and
    how they look on each side; everything else (order, batching, checkpoints, history,
    crash safety) is the same for every agenda."""

    agenda: str
    kind: Kind

    def __init__(self, profile: SyncProfile, mailbox: MailboxBackend, crm: CrmBackend, *,
                 dry_run: bool = False, trigger: str = "manual",
                 checkpoint: Callable[[str], None] | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.profile = profile
        self.mailbox = mailbox
        self.crm = crm
        self.dry_run = dry_run
        self.trigger = trigger
        self._checkpoint = checkpoint
        self._progress = progress
        self.settings = self.agenda_settings()
        # E-mail import only imports: it has no direction, deletions or a single folder.
        self.policy = Policy(
            direction=Direction(getattr(self.settings, "direction", Direction.IMPORT)),
            conflict=ConflictPolicy(profile.conflict_policy),
            deletion=DeletionPolicy(getattr(self.settings, "deletion_policy", "unlink")),
            synced_fields=self.synced_fields(), one_way=self.one_way_fields())
        self.folder = FolderInfo(id=getattr(self.settings, "folder_id", "inbox"),
                                 path=getattr(self.settings, "folder_path", "Inbox"),
                                 kind=self.kind)
        self.holder = uuid.uuid4().hex
        self._renewed_at = 0.0   # time.monotonic() of the lease's last claim or renewal
        self.run_record: Run | None = None
        self.wrote_remote = False
        self._parked: list[tuple[str, list[str]]] = []
        # Records of the items parked by this run's read, kept so matching them need not
        # fetch them a second time (a first import would read every contact twice). Items
        # parked by an earlier, interrupted run are not here and are fetched as before.
        self._parked_records: dict[str, tuple[ItemRef, Record]] = {}
        # CRM records this run created from new Exchange items while reading: not partners
        # for the items read after them (matching looks at the CRM as the run found it).
        self._imported_keys: set[str] = set()
        # CRM records this run made duplicate candidates: held like those stored before (a
        # dry run stores none, and would otherwise plan to copy them).
        self._held_keys: set[str] = set()
        # While a batch is recorded: its history lines and new links, written together.
        self._items_buffer: list[RunItem] | None = None
        self._links_buffer: dict[str, dict[str, Any]] | None = None
        self.state: FolderState | None = None
        # Why a deletion decided in this run is carried out, where the plain "deleted in
        # Exchange" would not say it (a meeting its organizer deleted or cancelled): by link.
        self._deletion_reasons: dict[int, str] = {}
        # A batch whose Exchange writes are under way (_execute with overlap).
        self._in_flight: tuple[list[Planned], RemoteWrites, Pending[Any] | None] | None = None
        # The mass-creation guard (_creations_held): a profile's first run is never held;
        # the sides (where records would be created) this run holds; an approval once used.
        self._first_run = True
        self._held_sides: set[Side] = set()
        self._approval_used = False
        # Contacts linked in this run whose Exchange item is still to get its identity stamp
        # (_stamp_imported): crm key, item id, the version the link holds. And the stamp each
        # contact read in this run carried, so that one already stamped is not written again.
        self._stamps_due: list[tuple[str, str, str]] = []
        self._read_stamps: dict[str, str] = {}

    # --- what an agenda says ------------------------------------------------------------------
    def agenda_settings(self) -> Any:
        raise NotImplementedError

    def synced_fields(self) -> frozenset[str]:
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

    def window_entries(self, pending_crm: dict[str, Any]) -> None:
        """Records that came into scope without changing (calendar: the window moved)."""

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
        raise NotImplementedError

    # --- the run as a whole -------------------------------------------------------------------
    def run(self) -> Run:
        run = Run.objects.create(
            profile=self.profile, agenda=self.agenda, trigger=self.trigger,
            kind=Run.Kind.ANALYSIS if self.dry_run else Run.Kind.SYNC)
        self.run_record = run
        self._renewed_at = time.monotonic()
        if not leases.claim(self.profile.pk, self.agenda, self.holder):
            run.status = Run.Status.REFUSED
            run.message = (f"Another run of this profile's {self.agenda} agenda is in "
                           "progress.")
            run.finished = timezone.now()
            run.save()
            return run
        try:
            waiting = self._sync()
        except MailboxError as exc:
            run.status, run.message = Run.Status.FAILED, exc.message
        except (OperationalError, InterfaceError) as exc:
            log.exception("%s sync of %s lost its database", self.agenda, self.profile)
            run.status = Run.Status.FAILED
            run.message = (f"The database failed during the run ({str(exc).strip()}); what "
                           "was recorded before stays, and the next run goes on from there.")
        except Exception as exc:   # errors are data: the worker loop never sees them
            log.exception("%s sync of %s failed", self.agenda, self.profile)
            run.status = Run.Status.FAILED
            run.message = internal_error(exc)
        else:
            if waiting:
                run.status = Run.Status.WAITING
            else:
                run.status = Run.Status.PARTIAL if run.errors else Run.Status.SUCCESS
        self._finish(run)
        return run

    def _finish(self, run: Run) -> None:
        """Release the lease and record the run's end. A database lost mid-run (restarted,
        failed over) is waited for on a new connection: else the run would stay "running",
        its lease held until it expired, and nothing would say why."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                leases.release(self.profile.pk, self.agenda, self.holder)
                run.requests = self.mailbox.requests_made
                run.finished = timezone.now()
                run.save()
                return
            except (OperationalError, InterfaceError):
                # Inside a transaction a new connection would not be the caller's.
                if attempt == RECORD_ATTEMPTS - 1 or connection.in_atomic_block:
                    raise
                log.warning("The database is unreachable; recording the %s run's end again "
                            "in a second", self.agenda)
                connection.close()
                time.sleep(1)

    def _sync(self) -> bool:
        state, _ = FolderState.objects.get_or_create(
            profile=self.profile, agenda=self.agenda, folder_id=self.folder.id)
        self.state = state
        if not self.dry_run:
            self._follow_folder()
        self._first_run = self._is_first_run(state)
        cursor_now = self.crm.current_cursor()
        pending_crm = {c.key: c for c in self.crm.changes_since(self.kind, state.crm_cursor)}
        self._say(f"{len(pending_crm)} CRM changes to look at")
        self._retries(pending_crm)
        self._apply_decisions(pending_crm)

        remote_state = self._read_remote(state, state.remote_state or None, pending_crm)
        self.window_entries(pending_crm)
        self._match_parked(pending_crm)
        self._stamp_imported()
        unchanged = self._linked_as_is(pending_crm)
        keys = [key for key in pending_crm if key not in unchanged]
        self._creations_held(Side.REMOTE, lambda: self._new_in_crm(keys, pending_crm))
        progress.report(self.run_record, more=len(keys))
        for start in range(0, len(keys), BATCH):
            self._crm_batch(keys[start:start + BATCH])
            self._renew()
        self._settle()
        self._stamp_imported()
        self._backfill_stamps()
        # Held creations are CRM changes not carried out: the cursor stays before them.
        if not self.dry_run and Side.REMOTE not in self._held_sides:
            state.crm_cursor = cursor_now
            state.save(update_fields=["crm_cursor", "updated"])
        waiting = self._deletions()
        if self.wrote_remote and not self.dry_run:
            # Our own writes come back as changes: read them now, as no-ops.
            self._read_remote(state, remote_state, {}, page_size=512)
        return waiting or bool(self._held_sides)

    def _follow_folder(self) -> None:
        """A newly chosen folder: the synced items move into it first (engine/folder_move)."""
        def moved(link: Link, detail: str) -> None:
            self._item(RunItem.Action.UPDATE_REMOTE, link.title, link.crm_key, link.remote_id,
                       detail)

        followed = folder_move.follow_folder(self.profile.pk, self.agenda, self.kind,
                                             self.folder, self.mailbox, moved)
        if followed is None:
            return
        self.wrote_remote = self.wrote_remote or followed.moved > 0
        if followed.failed:
            raise MailboxError(
                f"{followed.failed} synced items could not be moved into “{self.folder.path}”, "
                "the agenda's new folder; they stay linked where they are, and the next run "
                "tries again.")

    def _apply_decisions(self, pending_crm: dict[str, Any]) -> None:
        """Carry out what users decided on duplicate candidates since the last run: links
        first (which closes the pair's other candidacies), then the pairs kept apart."""
        for decision in (DuplicateCandidate.Decision.LINKED, DuplicateCandidate.Decision.APART):
            for candidate in DuplicateCandidate.objects.filter(
                    profile=self.profile, agenda=self.agenda, applied=False, decision=decision):
                self._apply_decision(candidate, pending_crm)

    def _apply_decision(self, candidate: DuplicateCandidate, pending_crm: dict[str, Any]) -> None:
        (result,) = self.mailbox.fetch(self.kind, [ItemRef(candidate.remote_id)])
        crm = self._crm_seen([candidate.crm_key]).get(candidate.crm_key)
        linked = bool(self._links(crm_keys=[candidate.crm_key]))
        if isinstance(result, ItemError) or crm is None:
            pass   # one of them is gone: nothing left to decide
        elif candidate.decision == DuplicateCandidate.Decision.LINKED:
            if not linked and not self._links(remote_ids=[result[0].id]):
                remote = Seen(result[0].id, result[0].version, result[1],
                              modified=getattr(result[1], "modified", None))
                self._execute([self._planned(plan_match(crm, remote, self.policy), None,
                                             candidate.remote_title)])
                pending_crm.pop(candidate.crm_key, None)
                if not self.dry_run:
                    DuplicateCandidate.objects.filter(
                        profile=self.profile, agenda=self.agenda,
                        decision=DuplicateCandidate.Decision.OPEN).filter(
                        models.Q(crm_key=candidate.crm_key)
                        | models.Q(remote_id=candidate.remote_id)).update(
                        decision=DuplicateCandidate.Decision.APART)
        else:
            # Kept apart: both are looked at again as new records, this pair excluded.
            if not self._links(remote_ids=[result[0].id]):
                self._park(result[0].id, result[1])
            if not linked:
                pending_crm.setdefault(candidate.crm_key, CrmChange(candidate.crm_key, False, 0))
        if not self.dry_run:
            DuplicateCandidate.objects.filter(pk=candidate.pk).update(applied=True)

    def _retries(self, pending_crm: dict[str, Any]) -> None:
        """Records whose writes failed last time are looked at again, as if changed."""
        retries = list(Retry.objects.filter(profile=self.profile, agenda=self.agenda))
        if not retries:
            return
        for retry in retries:
            if retry.side == "crm":
                pending_crm.setdefault(retry.key, CrmChange(retry.key, False, 0))
        remote_ids = [r.key for r in retries if r.side == "remote"]
        if not self.dry_run:
            Retry.objects.filter(pk__in=[r.pk for r in retries]).delete()
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
            self._remote_page(ChangePage(changes, errors, "", done=False), pending_crm)

    def _read_remote(self, state: FolderState, remote_state: str | None,
                     pending_crm: dict[str, Any], page_size: int = BATCH) -> str | None:
        # A read from scratch handles every item of the folder, a page at a time: the
        # folder's size, known up front, is the total the progress shows (else a first read
        # of 300 contacts said "100 of 100", then "200 of 200"). Pages beyond it add to it,
        # and the end of the read sets it to what the pages held.
        announced = self._folder_size() if remote_state is None else 0
        progress.report(self.run_record, more=announced)
        counted = 0
        for page in self.mailbox.read_changes(self.folder, remote_state, page_size=page_size,
                                              known=self._known_versions):
            counted += sum(1 for c in page.changes
                           if c.record is not None or c.type is ChangeType.DELETE)
            if counted > announced:
                progress.report(self.run_record, more=counted - announced)
                announced = counted
            self._remote_page(page, pending_crm)
            self._stamp_imported()
            remote_state = page.state
            if not self.dry_run:
                state.remote_state = page.state
                state.save(update_fields=["remote_state", "updated"])
            self._point("remote page checkpointed")
            self._renew()
        progress.report(self.run_record, more=counted - announced)
        return remote_state

    def _folder_size(self) -> int:
        try:
            return self.mailbox.count_items(self.folder) or 0
        except MailboxError:
            # Only the progress needed it: the read says what is wrong with the folder.
            # Its words only: the traceback would carry the server's own answer.
            log.info("Could not count the items of %s", self.folder.path)
            return 0

    def _known_versions(self, refs: list[ItemRef]) -> set[str]:
        """Items whose version the links already hold: this run's or an earlier run's own
        writes, read back. They need not be fetched."""
        versions = dict(Link.objects.filter(
            profile=self.profile, agenda=self.agenda, remote_id__in=[r.id for r in refs],
            state=Link.State.ACTIVE).values_list("remote_id", "remote_version"))
        return {r.id for r in refs if r.version and versions.get(r.id) == r.version}

    # --- reading Exchange's changes -----------------------------------------------------------
    def _remote_page(self, page: ChangePage, pending_crm: dict[str, Any]) -> None:
        for error in page.errors:
            self._item(RunItem.Action.ERROR, error.ref.id if error.ref else "",
                       remote_id=error.ref.id if error.ref else "", detail=error.message)
        changes = page.changes
        if self._stamps_needed():
            self._read_stamps.update((c.ref.id, c.record.stamp) for c in changes
                                     if c.record is not None)
        links = self._links(remote_ids=[c.ref.id for c in changes])
        stamped = {c.ref.id: self.crm.key_from_stamp(self.kind, c.record.stamp)
                   for c in changes if c.record is not None and c.record.stamp}
        stamp_links = self._links(crm_keys=[k for k in stamped.values() if k])
        origins = self.crm.find_by_origin(self.kind, [c.ref.id for c in changes
                                                      if c.ref.id not in links])
        crm_side = self._crm_seen({
            *(link.crm_key for link in links.values() if link.crm_key in pending_crm),
            *(k for k in stamped.values() if k), *origins.values()})
        moved = self._moved([links[c.ref.id] for c in changes
                             if c.type is ChangeType.DELETE and c.ref.id in links
                             and links[c.ref.id].state != Link.State.UNLINKED])
        batch: list[Planned] = []
        to_park: list[tuple[ItemRef, Record]] = []
        shared = self.shared_keys([link.crm_key for link in links.values()])
        for change in changes:
            link = links.get(change.ref.id)
            if change.type is ChangeType.DELETE:
                if link is not None:
                    crm = self._pending_side(link.crm_key, pending_crm, crm_side)
                    pending_crm.pop(link.crm_key, None)
                    remote = Seen(change.ref.id, "", None,
                                  moved_to=moved.get(change.ref.id, ""))
                    known = self._known(link, shared)
                    if crm is None:   # the CRM side did not change: is it still in scope?
                        known.in_scope = self.snapshot_in_scope(link.crm_snapshot)
                    batch.append(self._planned(plan_linked(known, crm, remote,
                                                           self.policy), link))
                if not self.dry_run:
                    PendingItem.objects.filter(profile=self.profile, agenda=self.agenda,
                                               remote_id=change.ref.id).delete()
                continue
            if change.record is None:
                continue   # known in exactly this version: nothing changed
            record = self.incoming(change.record)
            remote = Seen(change.ref.id, change.ref.version, record,
                          in_scope=self.remote_in_scope(record),
                          modified=getattr(record, "modified", None))
            title = self.title(record)
            if link is not None:
                crm = self._pending_side(link.crm_key, pending_crm, crm_side)
                pending_crm.pop(link.crm_key, None)
                if link.state != Link.State.ACTIVE:
                    continue   # its deletion is already decided; the guard handles it
                batch.append(self._planned(plan_linked(self._known(link, shared), crm, remote,
                                                       self.policy), link, title))
                continue
            # Not linked: a stamp or an origin names its CRM partner (our own earlier write).
            key = stamped.get(change.ref.id) or origins.get(change.ref.id)
            partner = crm_side.get(key) if key else None
            if partner is not None and key not in stamp_links:
                pending_crm.pop(key, None)
                batch.append(self._planned(plan_match(partner, remote, self.policy),
                                           None, title))
                continue
            if key and partner is None and stamped.get(change.ref.id) == key:
                # Our own copy of a CRM record deleted before its link was saved (a crash in
                # between): importing it would bring the deleted record back.
                self._item(RunItem.Action.SKIP, title, key, change.ref.id,
                           "a copy of a CRM record that was deleted meanwhile; left alone")
                continue
            if not remote.in_scope:
                continue   # never synced and outside the chosen categories: nothing to do
            to_park.append((change.ref, record))
        self._execute(batch)
        self._new_remote_items(to_park)

    def _moved(self, gone: list[Link]) -> dict[str, str]:
        """Linked items gone from the folder that are still in the mailbox, outside Deleted
        Items (archived, filed by a rule, dragged away): their ids and the folder each is in
        now. Looked for all at once, by stamp (an EWS ItemId changes on a move) or id."""
        if not gone:
            return {}
        found = self.mailbox.locate(self.kind, [
            Sought(ItemRef(link.remote_id), self.crm.stamp(self.kind, link.crm_key),
                   link.remote_uid) for link in gone])
        return {remote_id: where.folder_path or "another folder"
                for remote_id, where in found.items() if not where.deleted}

    def _new_remote_items(self, items: list[tuple[ItemRef, Record]]) -> None:
        """A page's new Exchange items. One that no CRM record could be the partner of (no
        record shares a match key) is created in the CRM now, while the next page is being
        read (EwsMailbox reads ahead); the others are parked until the whole folder is read,
        since whether a match is unique depends on every item (_match_parked)."""
        if not items:
            return
        keys = {key for _, record in items for key in self.match_keys(record)}
        candidates = self._crm_candidates(list(keys)) if keys else {}
        now: list[Planned] = []
        to_park: list[tuple[ItemRef, Record]] = []
        for ref, record in items:
            # After the first run every new item waits for the mass-creation guard's count.
            if not self._first_run or any(candidates.get(key)
                                          for key in self.match_keys(record)):
                to_park.append((ref, record))
                continue
            remote = Seen(ref.id, ref.version, record,
                          modified=getattr(record, "modified", None))
            now.append(self._planned(plan_new(Side.REMOTE, remote, self.policy), None,
                                     self.title(record)))
        self._park_page(to_park)
        self._execute(now)
        self._imported_keys.update(p.crm_key for p in now if p.crm_key)

    def _crm_candidates(self, keys: list[str]) -> dict[str, list[str]]:
        """crm_candidates, leaving out the records this run created from Exchange items."""
        found = self.crm_candidates(keys)
        if not self._imported_keys:
            return found
        return {key: [k for k in crm_keys if k not in self._imported_keys]
                for key, crm_keys in found.items()}

    @staticmethod
    def _pending_side(key: str, pending_crm: dict[str, Any],
                      crm_side: dict[str, Seen]) -> Seen | None:
        """The CRM side of a linked pair: None if it did not change; a record with None if
        it is gone."""
        if key not in pending_crm:
            return None
        return crm_side.get(key) or Seen(key, "", None)

    def _park_page(self, items: list[tuple[ItemRef, Record]]) -> None:
        """A page's new items parked with one statement (not a transaction per item)."""
        for ref, record in items:
            if len(self._parked_records) < PARKED_IN_MEMORY:
                self._parked_records[ref.id] = (ref, record)
        if self.dry_run or len(items) < 2:
            for ref, record in items:
                self._park(ref.id, record)
            return
        PendingItem.objects.bulk_create(
            [PendingItem(profile=self.profile, agenda=self.agenda, remote_id=ref.id,
                         match_keys=self.match_keys(record)) for ref, record in items],
            update_conflicts=True, unique_fields=["profile", "agenda", "remote_id"],
            update_fields=["match_keys"])

    def _park(self, remote_id: str, record: Record) -> None:
        keys = self.match_keys(record)
        if self.dry_run:
            self._parked.append((remote_id, keys))
            return
        PendingItem.objects.update_or_create(profile=self.profile, agenda=self.agenda,
                                             remote_id=remote_id,
                                             defaults={"match_keys": keys})

    def _match_parked(self, pending_crm: dict[str, Any]) -> None:
        """New Exchange items, now that the whole folder is read: link, hold or create."""
        if self.dry_run:
            parked = list(self._parked)
        else:
            parked = list(PendingItem.objects.filter(profile=self.profile, agenda=self.agenda)
                          .values_list("remote_id", "match_keys"))
        if not parked:
            return
        per_address: dict[str, int] = defaultdict(int)
        for _, emails in parked:
            for address in set(emails):
                per_address[address] += 1
        crm_by_address = self._crm_candidates(list(per_address))
        candidates = {k for keys in crm_by_address.values() for k in keys}
        linked = set(Link.objects.filter(profile=self.profile, agenda=self.agenda,
                                         crm_key__in=candidates)
                     .values_list("crm_key", flat=True))
        apart = set(DuplicateCandidate.objects.filter(
            profile=self.profile, agenda=self.agenda,
            decision=DuplicateCandidate.Decision.APART).values_list("crm_key", "remote_id"))
        # Those no CRM record could be the partner of are created (_decide_new_remote).
        hold = self._creations_held(Side.CRM, lambda: sum(
            1 for remote_id, emails in parked
            if all((k, remote_id) in apart for a in emails for k in crm_by_address.get(a, []))))
        for start in range(0, len(parked), BATCH):
            chunk = parked[start:start + BATCH]
            fetched = self._parked_items([rid for rid, _ in chunk])
            crm_keys = {k for _, emails in chunk for a in emails
                        for k in crm_by_address.get(a, [])}
            crm_side = self._crm_seen(crm_keys)
            # Parked items a link already names: a run killed after its CRM write left the
            # match's link as it stood then (LinkAction.before_remote). Each is a linked
            # item read again, not a new one (its partner is linked: a duplicate candidate).
            already = set(Link.objects.filter(
                profile=self.profile, agenda=self.agenda,
                remote_id__in=[rid for rid, _ in chunk]).values_list("remote_id", flat=True))
            self._remote_page(ChangePage(
                [ItemChange(ChangeType.UPSERT, result[0], result[1])
                 for (remote_id, _), result in zip(chunk, fetched, strict=False)
                 if remote_id in already and not isinstance(result, ItemError)],
                [], "", done=False), pending_crm)
            batch: list[Planned] = []
            held: set[str] = set()
            for (remote_id, emails), result in zip(chunk, fetched, strict=False):
                if remote_id in already:
                    continue
                if isinstance(result, ItemError):
                    if result.code != "ErrorItemNotFound":
                        self._item(RunItem.Action.ERROR, remote_id, remote_id=remote_id,
                                   detail=result.message)
                    continue
                ref, record = result
                record = self.incoming(record)
                if not self.remote_in_scope(record):
                    # Parked by a run killed before it matched, and out of scope since (an
                    # event that left the window): left alone like any other. Its partner
                    # may be out of scope too, and importing it would double the pair.
                    continue
                remote = Seen(ref.id, ref.version, record,
                              modified=getattr(record, "modified", None))
                planned = self._decide_new_remote(remote, emails, crm_by_address, per_address,
                                                  linked, apart, crm_side, pending_crm)
                if hold and plan_has_create(planned.plan):
                    self._hold_creation(planned)
                    held.add(remote_id)   # stays parked for the run that may create it
                    continue
                planned.unpark = remote_id
                batch.append(planned)
            # The batch's Exchange writes (matched pairs filled in) overlap what follows; each
            # item stays parked until its plan is recorded (_record_batch), so a crash before
            # then finds it parked again.
            self._execute(batch, overlap=True)
            settled = {planned.unpark for planned in batch} | held
            if not self.dry_run:
                PendingItem.objects.filter(
                    profile=self.profile, agenda=self.agenda,
                    remote_id__in=[rid for rid, _ in chunk if rid not in settled]).delete()
            self._stamp_imported(at_least=BATCH)
            self._renew()

    def _parked_items(self, remote_ids: list[str]) -> list[Any]:
        """The parked items' records: read in this run already, or fetched (in order)."""
        missing = [ItemRef(rid) for rid in remote_ids if rid not in self._parked_records]
        fetched = iter(self.mailbox.fetch(self.kind, missing) if missing else [])
        return [self._parked_records.pop(rid) if rid in self._parked_records
                else next(fetched) for rid in remote_ids]

    def _decide_new_remote(self, remote: Seen, emails: list[str],
                           crm_by_address: dict[str, list[str]], per_address: dict[str, int],
                           linked: set[str], apart: set[tuple[str, str]],
                           crm_side: dict[str, Seen], pending_crm: dict[str, Any]) -> Planned:
        title = self.title(remote.record)
        pairs = [(a, k) for a in dict.fromkeys(emails) for k in crm_by_address.get(a, [])
                 if (k, remote.key) not in apart]
        if not pairs:
            return self._planned(plan_new(Side.REMOTE, remote, self.policy), None, title)
        keys = {k for _, k in pairs}
        unique = (len(keys) == 1 and not (keys & linked)
                  and all(per_address[a] == 1 for a, _ in pairs)
                  and all(len(crm_by_address[a]) == 1 for a, _ in pairs))
        key = next(iter(keys))
        doubts = {(a, k): self.doubt(a, crm_side[k].record, remote.record)
                  if k in crm_side else "" for a, k in pairs}
        if unique and key in crm_side and not any(doubts.values()):
            linked.add(key)
            pending_crm.pop(key, None)
            return self._planned(plan_match(crm_side[key], remote, self.policy), None, title)
        plan = Plan()
        fields = self.candidate_fields(remote.record) if remote.record is not None else {}
        for address, crm_key in pairs:
            plan.add(Duplicate(crm_key, remote.key, self.describe_key(address),
                               doubts[address, crm_key], fields))
        return Planned(plan, title, remote_id=remote.key)

    # --- the CRM's changes --------------------------------------------------------------------
    def _linked_as_is(self, pending_crm: dict[str, Any]) -> set[str]:
        """CRM changes whose revision is the version their link holds: this run's or an
        earlier run's own writes. Told apart by one query per 500, without fetching the
        records: the run after a first import of thousands of contacts took seconds reading
        them all back (bench/). The built-in CRM's version is its change revision; any
        later change has a higher one, so an equal version means unchanged."""
        wanted = {key: str(change.revision) for key, change in pending_crm.items()
                  if isinstance(change, CrmChange) and not change.deleted and change.revision}
        keys = list(wanted)
        same: set[str] = set()
        for start in range(0, len(keys), 500):
            same.update(crm_key for crm_key, version in Link.objects.filter(
                profile=self.profile, agenda=self.agenda, state=Link.State.ACTIVE,
                crm_key__in=keys[start:start + 500]).values_list("crm_key", "crm_version")
                if wanted[crm_key] == version)
        return same

    def _crm_batch(self, keys: Sequence[str]) -> None:
        links = self._links(crm_keys=keys)
        seen = self._crm_seen(keys)
        held = self._held_keys | set(DuplicateCandidate.objects.filter(
            profile=self.profile, agenda=self.agenda, crm_key__in=keys,
            decision=DuplicateCandidate.Decision.OPEN).values_list("crm_key", flat=True))
        batch: list[Planned] = []
        for key in keys:
            link = links.get(key)
            crm = seen.get(key) or Seen(key, "", None)
            if link is not None:
                if link.state != Link.State.ACTIVE or (crm.record is not None
                                                       and crm.version == link.crm_version):
                    continue   # deletion already decided, or our own write read back
                known = self._known(link)
                if crm.record is None:   # deleted; Exchange unchanged: is it still in scope?
                    known.in_scope = self.snapshot_in_scope(link.remote_snapshot)
                batch.append(self._planned(plan_linked(known, crm, None,
                                                       self.policy), link))
            elif crm.record is not None and key not in held:
                planned = self._planned(plan_new(Side.CRM, crm, self.policy), None,
                                        self.title(crm.record))
                if Side.REMOTE in self._held_sides and plan_has_create(planned.plan):
                    self._hold_creation(planned)
                    continue
                batch.append(planned)
        self._execute(batch, overlap=True)

    # --- deletions and the mass-deletion guard ------------------------------------------------
    def _deletions(self) -> bool:
        waiting = Link.objects.filter(profile=self.profile, agenda=self.agenda, state__in=[
            Link.State.CRM_DELETED, Link.State.REMOTE_DELETED])
        count = waiting.count()
        if not count:
            return False
        total = Link.objects.filter(profile=self.profile, agenda=self.agenda).exclude(
            state=Link.State.UNLINKED).count()
        too_many = (count > self.profile.mass_delete_min_items
                    and count * 100 > self.profile.mass_delete_min_percent * total)
        if too_many and not self._approved():
            self._say(f"{count} deletions wait for an administrator's approval")
            for link in waiting:
                self._item(RunItem.Action.PENDING_DELETE, link.title, link.crm_key,
                           link.remote_id, "more deletions than the mass-deletion guard allows")
            return True
        if self.dry_run:
            for link in waiting:
                action = (RunItem.Action.DELETE_REMOTE if link.state == Link.State.CRM_DELETED
                          else RunItem.Action.DELETE_CRM)
                self._item(action, link.title, link.crm_key, link.remote_id)
            return False
        remote_doomed = list(waiting.filter(state=Link.State.CRM_DELETED))
        for start in range(0, len(remote_doomed), BATCH):
            chunk = remote_doomed[start:start + BATCH]
            results = self.mailbox.delete(self.kind, [ItemRef(link.remote_id) for link in chunk])
            self.wrote_remote = True
            for link, result in zip(chunk, results, strict=False):
                if result.ok:
                    link.delete()
                    self._item(RunItem.Action.DELETE_REMOTE, link.title, link.crm_key,
                               link.remote_id, "deleted in the CRM")
                elif result.status is WriteStatus.REFUSED:
                    link.state = Link.State.UNLINKED   # Exchange keeps it, no longer synced
                    link.save(update_fields=["state", "updated"])
                    self._item(RunItem.Action.SKIP, link.title, link.crm_key, link.remote_id,
                               f"deleted in the CRM: {result.message}")
                else:
                    self._item(RunItem.Action.ERROR, link.title, link.crm_key, link.remote_id,
                               result.message)
            self._point("remote deletions done")
        for link in waiting.filter(state=Link.State.REMOTE_DELETED):
            result = self.crm.delete(self.kind, link.crm_key)
            if result.ok:
                reason = self._deletion_reasons.get(link.pk, "deleted in Exchange")
                link.delete()
                self._item(RunItem.Action.DELETE_CRM, link.title, link.crm_key, link.remote_id,
                           reason)
            else:
                self._item(RunItem.Action.ERROR, link.title, link.crm_key, link.remote_id,
                           result.error)
            self._point("crm deletion done")
        return False

    def _approved(self) -> bool:
        """Whether an administrator approved a run of this agenda that waits (for mass
        deletions or creations). An approval is used by one run, which carries out all that
        waits; every approval given until then is used with it, so none is left over to let
        a later mass change through unseen."""
        if self._approval_used:
            return True
        approvals = Run.objects.filter(profile=self.profile, agenda=self.agenda,
                                       status=Run.Status.WAITING, approved_at__isnull=False,
                                       approval_used=False)
        if not approvals.exists():
            return False
        if not self.dry_run:
            approvals.update(approval_used=True)
        self._approval_used = True
        return True

    # --- the mass-creation guard ----------------------------------------------------------------
    def _is_first_run(self, state: FolderState) -> bool:
        """A profile's first run copies what each side holds: the mass-creation guard lets it
        create everything. So do a run from a fresh state (after a force resync, or into a
        newly chosen folder) and the runs after a first one that did not finish."""
        if not state.remote_state and not state.crm_cursor:
            return True
        return not Run.objects.filter(
            profile=self.profile, agenda=self.agenda, kind=Run.Kind.SYNC,
            status__in=[Run.Status.SUCCESS, Run.Status.PARTIAL, Run.Status.WAITING],
        ).exclude(pk=getattr(self.run_record, "pk", None)).exists()

    def _creations_held(self, side: Side, count: Callable[[], int]) -> bool:
        """Whether this run holds the records it would create on `side`: more than the
        profile allows, in a run other than its first, and not approved. Counted (`count`)
        only when it matters."""
        source = Side.REMOTE if side is Side.CRM else Side.CRM
        if self._first_run or not self.policy.accepts(source):
            return False
        found = count()
        if found <= self.profile.mass_create_min_items or self._approved():
            return False
        where = "the CRM" if side is Side.CRM else "Exchange"
        self._say(f"{found} creations in {where} wait for an administrator's approval")
        self._held_sides.add(side)
        return True

    def _hold_creation(self, planned: Planned) -> None:
        """A creation the guard holds: listed; what would be created is looked at again by
        the next run (a parked Exchange item stays parked; a CRM record is retried)."""
        action = self._link_action(planned)
        self._item(RunItem.Action.PENDING_CREATE, planned.title, action.crm_key or "",
                   action.remote_id or "", "more creations than the mass-creation guard allows")
        if action.crm_key and not self.dry_run:
            # Also records that came into scope without changing (calendar: the window moved).
            Retry.objects.get_or_create(profile=self.profile, agenda=self.agenda, side="crm",
                                        key=action.crm_key,
                                        defaults={"reason": "held by the mass-creation guard"})

    def _new_in_crm(self, keys: list[str], pending_crm: dict[str, Any]) -> int:
        """How many of these CRM changes are records _crm_batch would create in Exchange:
        unlinked, not held as duplicate candidates, existing and in scope."""
        fresh = [key for key in keys if not getattr(pending_crm.get(key), "deleted", False)]
        taken: set[str] = set()
        for start in range(0, len(fresh), 500):
            chunk = fresh[start:start + 500]
            taken.update(Link.objects.filter(profile=self.profile, agenda=self.agenda,
                                             crm_key__in=chunk).values_list("crm_key", flat=True))
            taken.update(DuplicateCandidate.objects.filter(
                profile=self.profile, agenda=self.agenda, crm_key__in=chunk,
                decision=DuplicateCandidate.Decision.OPEN).values_list("crm_key", flat=True))
        new = [key for key in fresh if key not in taken]
        if len(new) <= self.profile.mass_create_min_items:
            return len(new)   # not too many even if all were: no need to read them
        return sum(sum(1 for seen in self._crm_seen(new[start:start + BATCH]).values()
                       if seen.in_scope and seen.record is not None)
                   for start in range(0, len(new), BATCH))

    # --- executing plans ------------------------------------------------------------------------
    def _planned(self, plan: Plan, link: Link | None, title: str = "") -> Planned:
        return Planned(plan, title or (link.title if link else ""),
                       crm_key=link.crm_key if link else None,
                       remote_id=link.remote_id if link else None, link=link)

    def _execute(self, batch: list[Planned], overlap: bool = False) -> None:
        """Carry out a batch's plans and record them. With `overlap`, its Exchange writes
        may still be under way when this returns: they are applied and recorded by the next
        batch's _execute or by _settle(), so the Exchange round trips of one batch overlap
        the database work of the next (a first export of thousands of contacts waited on
        Exchange and on the database in turn; bench/)."""
        if not batch:
            return
        if self.dry_run:
            self._record_batch(batch)
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
            self._settle()   # history stays in the order things were done
        with transaction.atomic():
            created = self._create_crm_many(batch)
            created |= self._update_crm_many(batch, created)
            for planned in batch:
                if id(planned) not in created:
                    self._write_crm(planned)
                self._point("crm write")
            if local:
                if not remote:
                    self._point("remote writes")
                self._record_batch(local)
            self._links_before_remote(remote)
        if not remote:
            return
        writes = self._remote_writes(remote)
        self._settle()   # one batch's Exchange writes under way at a time, in order
        sending = self.mailbox.start(functools.partial(self._send, writes)) \
            if writes.creates or writes.updates else None
        self._in_flight = (remote, writes, sending)
        if not overlap:
            self._settle()

    def _stamp_imported(self, at_least: int = 1) -> None:
        """Write the identity stamp (the CRM key) onto the Exchange contacts this run linked
        without writing to them (imported from Exchange, or matched to a CRM person), one
        UpdateItem per BATCH setting nothing else, once their links are saved. On EWS an
        item's id changes when it moves, and the stamp is what finds it again (_moved):
        without it a contact made in Outlook and then archived would be taken for deleted.
        The stamp changes the item's version: the link takes the new one, so the write does
        not come back as a change. A write refused (the item edited meanwhile) leaves the
        link as it was: the edit is read next run, and the stamp is written then."""
        due = self._stamps_due
        if not due or len(due) < at_least:
            return
        self._stamps_due = []
        self._write_stamps(due)

    def _write_stamps(self, due: list[tuple[str, str, str]]) -> None:
        self._settle()   # one batch of Exchange writes at a time
        results = self.mailbox.update(self.kind, [
            Update(ItemRef(remote_id, version),
                   ContactRecord(stamp=self.crm.stamp(self.kind, crm_key)), frozenset({"stamp"}))
            for crm_key, remote_id, version in due])
        self.wrote_remote = True
        links = {link.crm_key: link for link in Link.objects.filter(
            profile=self.profile, agenda=self.agenda, crm_key__in=[d[0] for d in due])}
        changed: list[Link] = []
        for (crm_key, remote_id, version), result in zip(due, results, strict=False):
            link = links.get(crm_key)
            if not result.ok or result.ref is None:
                log.info("The identity stamp of %s was not written: %s", remote_id,
                         result.message)
            elif (link is not None and link.remote_id == remote_id
                  and link.remote_version == version and result.ref.id == remote_id):
                link.remote_version = result.ref.version
                changed.append(link)
        if changed:
            Link.objects.bulk_update(changed, ["remote_version"])

    def _backfill_stamps(self) -> None:
        """Contacts linked before the engine stamped imports and matches carry no identity
        stamp, so archiving one would delete its CRM person: they are stamped once, BATCH
        a request, with the versions their links hold (an item edited since is read next
        run and stamped then). The folder's state remembers that it was done, so a run
        with nothing to do still makes one request."""
        state = self.state
        if (state is None or state.stamps_checked or self.dry_run
                or not self._stamps_needed()):
            return
        links = Link.objects.filter(profile=self.profile, agenda=self.agenda,
                                    state=Link.State.ACTIVE).order_by("pk").values_list(
            "crm_key", "remote_id", "remote_version")
        due = [(crm_key, remote_id, version) for crm_key, remote_id, version in links
               if self._read_stamps.get(remote_id) != self.crm.stamp(self.kind, crm_key)]
        for start in range(0, len(due), BATCH):
            self._write_stamps(due[start:start + BATCH])
            self._renew()
        state.stamps_checked = True
        state.save(update_fields=["stamps_checked", "updated"])

    def _stamps_needed(self) -> bool:
        """Whether the identity stamp is what finds this agenda's items once moved: contacts
        (events are found by their meeting's id), on a mailbox whose ids change on a move."""
        return self.kind is Kind.CONTACTS and not self.mailbox.ids_survive_moves

    def _settle(self) -> None:
        """The batch whose Exchange writes are under way: their results, photos, history."""
        if self._in_flight is None:
            return
        batch, writes, sending = self._in_flight
        self._in_flight = None
        if sending is not None:
            self._apply_sent(writes, sending.result())
        self._point("remote writes")
        for planned in batch:
            self._photos(planned)
        self._record_batch(batch)

    def _record_batch(self, batch: list[Planned]) -> None:
        # Recording is database work only: one commit for the batch's links and history.
        # Rolled back by a crash, it is found again next run (stamps, origins; ARCHITECTURE).
        with transaction.atomic():
            self._items_buffer, self._links_buffer = [], {}
            try:
                for planned in batch:
                    self._record(planned)
                    self._point("link recorded")
                self._flush_recorded()
                unparked = [planned.unpark for planned in batch if planned.unpark]
                if unparked and not self.dry_run:
                    PendingItem.objects.filter(profile=self.profile, agenda=self.agenda,
                                               remote_id__in=unparked).delete()
            finally:
                self._items_buffer = self._links_buffer = None
        # Live progress for the dashboard (written after the commit, at most once a second).
        progress.report(self.run_record, done=len(batch))

    def _flush_recorded(self) -> None:
        """The batch's new links and history lines, a few statements for the lot."""
        run = self.run_record
        assert run is not None and self._items_buffer is not None
        new_links = self._links_buffer or {}
        if new_links:
            # Rows left by an interrupted run or by _links_before_remote are replaced: one
            # delete and the batch's one insert cost less than an UPDATE per row (or
            # bulk_update's CASE per field and row: a second of a two-way first sync).
            Link.objects.filter(profile=self.profile, agenda=self.agenda,
                                crm_key__in=list(new_links)).delete()
            Link.objects.bulk_create([Link(profile=self.profile, agenda=self.agenda, **values)
                                      for values in new_links.values()])
        RunItem.objects.bulk_create(self._items_buffer)
        if self._items_buffer and not self.dry_run:
            Run.objects.filter(pk=run.pk).update(
                **{name: getattr(run, name) for name in set(COUNTERS.values())})

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
            (write.record, planned.remote_id or self._link_action(planned).remote_id or "")
            for planned, write in creates])
        return self._crm_written([planned for planned, _ in creates], results)

    @staticmethod
    def _crm_written(done: list[Planned], results: list[Any]) -> set[int]:
        """Each Planned's CRM write result noted on it; the ids of those Planned."""
        for planned, result in zip(done, results, strict=True):
            planned.warnings.extend(result.warnings)
            if not result.ok:
                planned.failed = result.error
                planned.conflict_later = result.conflict
                continue
            planned.crm_key = result.key
            planned.new_crm_version = result.version
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
        return self._link_action(planned).crm_version or (
            planned.link.crm_version if planned.link else "")

    def _write_crm(self, planned: Planned) -> None:
        for _ in planned.plan.of(Leave):
            result = self.leave(planned.crm_key or "")
            if not result.ok:
                planned.failed = result.error
                return
        for write in planned.plan.writes:
            if write.side is not Side.CRM:
                continue
            if write.key is None:
                origin = planned.remote_id or self._link_action(planned).remote_id or ""
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
                crm_key = planned.crm_key or self._link_action(planned).crm_key or ""
                record = self.outgoing(write.record, crm_key)
                if write.key is None:
                    creates.append((planned, record))
                else:
                    version = (self._link_action(planned).remote_version
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
        updated = self.mailbox.update(self.kind, [u for _, u in writes.updates]) \
            if writes.updates else []
        return created, updated

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
        action = self._link_action(planned)
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

    @staticmethod
    def _link_action(planned: Planned) -> LinkAction:
        links = planned.plan.of(LinkAction)
        return links[0] if links else LinkAction(None, None, {}, {})

    # --- recording ----------------------------------------------------------------------------
    def _record(self, planned: Planned) -> None:
        plan = planned.plan
        for conflict in plan.of(Conflict):
            winner = "Exchange" if conflict.winner is Side.REMOTE else "the CRM"
            self._item(RunItem.Action.CONFLICT, planned.title, planned.crm_key or "",
                       planned.remote_id or "", f"{conflict.reason}; kept the values from "
                                                f"{winner}")
        if planned.failed:
            action = RunItem.Action.CONFLICT if planned.conflict_later else RunItem.Action.ERROR
            self._item(action, planned.title, planned.crm_key or "", planned.remote_id or "",
                       planned.failed + " (tried again next run)")
            if not self.dry_run:
                self._retry_later(planned)
            return
        for write in plan.writes:
            if planned.refused and write.side is Side.REMOTE:
                # Kept as Exchange has it; the link remembers the CRM's change as carried, so
                # it is not tried again until either side changes.
                self._item(RunItem.Action.SKIP, planned.title, planned.crm_key or "",
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
            if warnings:
                detail += " — " + " ".join(warnings)
            self._item(action, planned.title, planned.crm_key or "",
                       (planned.new_remote.id if planned.new_remote else planned.remote_id)
                       or "", detail)
        for skip in plan.of(Skip):
            self._item(RunItem.Action.SKIP, planned.title, planned.crm_key or "",
                       planned.remote_id or "", skip.reason)
        for duplicate in plan.of(Duplicate):
            self._item(RunItem.Action.DUPLICATE, planned.title, duplicate.crm_key,
                       duplicate.remote_id, duplicate.reason or f"shares {duplicate.address}")
            self._held_keys.add(duplicate.crm_key)
            if not self.dry_run:
                DuplicateCandidate.objects.update_or_create(
                    profile=self.profile, agenda=self.agenda, crm_key=duplicate.crm_key,
                    remote_id=duplicate.remote_id,
                    defaults={"remote_fields": duplicate.remote_fields},
                    create_defaults={"address": duplicate.address,
                                     "remote_title": planned.title,
                                     "remote_fields": duplicate.remote_fields,
                                     "crm_title": self._crm_title(duplicate.crm_key)})
        for leave in plan.of(Leave):
            self._item(RunItem.Action.UNLINK, planned.title, planned.crm_key or "",
                       planned.remote_id or "", leave.reason)
            if not self.dry_run and planned.link is not None:
                planned.link.delete()
        for unlink in plan.of(Unlink):
            self._item(RunItem.Action.UNLINK, planned.title, planned.crm_key or "",
                       planned.remote_id or "", unlink.reason)
            if not self.dry_run and planned.link is not None:
                if unlink.for_good:
                    planned.link.state = Link.State.UNLINKED
                    planned.link.save(update_fields=["state", "updated"])
                else:
                    planned.link.delete()
        for pending in plan.of(PendingDeletion):
            state = (Link.State.CRM_DELETED if pending.deleted_on is Side.CRM
                     else Link.State.REMOTE_DELETED)
            if not self.dry_run and planned.link is not None:
                planned.link.state = state
                planned.link.save(update_fields=["state", "updated"])
                if pending.reason:
                    self._deletion_reasons[planned.link.pk] = pending.reason
            elif self.dry_run:
                action = (RunItem.Action.DELETE_REMOTE if pending.deleted_on is Side.CRM
                          else RunItem.Action.DELETE_CRM)
                self._item(action, planned.title, planned.crm_key or "",
                           planned.remote_id or "", pending.reason or "deleted on the other side")
        for link_action in plan.of(LinkAction):
            self._save_link(planned, link_action)

    def _retry_later(self, planned: Planned) -> None:
        action = self._link_action(planned)
        for side, key in (("crm", planned.crm_key or action.crm_key),
                          ("remote", planned.remote_id or action.remote_id)):
            if key:
                Retry.objects.update_or_create(profile=self.profile, agenda=self.agenda,
                                               side=side, key=key,
                                               defaults={"reason": planned.failed[:2000]})

    def _save_link(self, planned: Planned, action: LinkAction) -> None:
        if self.dry_run:
            if planned.link is None and not plan_has_create(planned.plan):
                self._item(RunItem.Action.LINK, planned.title, action.crm_key or "",
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
        if self._stamp_due(planned, crm_key, remote_id):
            self._stamps_due.append((crm_key, remote_id, values["remote_version"]))
        if link is None and self._links_buffer is not None:
            # Written with the batch's other new links (_flush_recorded).
            self._links_buffer[crm_key] = values
            if not plan_has_create(planned.plan):
                self._item(RunItem.Action.LINK, planned.title, crm_key, remote_id,
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
                Link.objects.update_or_create(profile=self.profile, agenda=self.agenda,
                                              crm_key=crm_key, defaults=values)
                if not plan_has_create(planned.plan):
                    self._item(RunItem.Action.LINK, planned.title, crm_key, remote_id,
                               "the same record on both sides")

    def _stamp_due(self, planned: Planned, crm_key: str, remote_id: str) -> bool:
        """Whether a link this plan keeps leaves its Exchange contact without its identity
        stamp, on a mailbox whose ids change when items move: an item the plan did not write
        to (a write carries the stamp) that was not read with it (made in Outlook and
        imported, matched to a CRM person, linked before stamps were written)."""
        return (self._stamps_needed()
                and not any(w.side is Side.REMOTE for w in planned.plan.writes)
                and self._read_stamps.get(remote_id) != self.crm.stamp(self.kind, crm_key))

    def _links_before_remote(self, batch: list[Planned]) -> None:
        """The links of plans whose CRM writes are done and whose Exchange writes are not yet:
        as LinkAction.before_remote says, with the versions they had (so that both records
        are looked at again next time, should the Exchange writes never happen). Saved in
        the CRM writes' transaction; _save_link replaces them once the writes are done."""
        fresh: list[Link] = []
        changed: list[Link] = []
        for planned in batch:
            action = self._link_action(planned)
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
                fresh.append(Link(profile=self.profile, agenda=self.agenda, **values))
            else:
                # A copy: planned.link keeps what the plan was made from.
                changed.append(Link(pk=link.pk, **values))
        if changed:
            Link.objects.bulk_update(changed, sorted(LINK_STATE_FIELDS))
        if fresh:
            Link.objects.bulk_create(fresh)

    def _item(self, action: str, title: str, crm_key: str = "", remote_id: str = "",
              detail: str = "") -> None:
        run = self.run_record
        assert run is not None
        item = RunItem(run=run, action=action, title=(title or "")[:255],
                       crm_key=crm_key or "", remote_id=remote_id or "", detail=detail)
        counter = COUNTERS.get(action)
        if counter:
            setattr(run, counter, getattr(run, counter) + 1)
        if self._items_buffer is not None:
            self._items_buffer.append(item)   # with the batch, counters too (_flush_recorded)
            return
        item.save()
        if counter and not self.dry_run:
            Run.objects.filter(pk=run.pk).update(**{counter: getattr(run, counter)})

    # --- helpers ------------------------------------------------------------------------------
    def _links(self, remote_ids: Iterable[str] = (), crm_keys: Iterable[str] = ()) -> dict:
        remote_ids, crm_keys = list(remote_ids), list(crm_keys)
        query = Link.objects.filter(profile=self.profile, agenda=self.agenda)
        if remote_ids:
            return {link.remote_id: link for link in query.filter(remote_id__in=remote_ids)}
        if crm_keys:
            return {link.crm_key: link for link in query.filter(crm_key__in=crm_keys)}
        return {}

    def _crm_seen(self, keys: Iterable[str]) -> dict[str, Seen]:
        keys = [k for k in keys if k]
        if not keys:
            return {}
        records: dict[str, CrmRecord] = self.crm.fetch(self.kind, keys)
        in_scope = self.crm_in_scope(records)
        return {key: Seen(key, r.version, r.record, in_scope=key in in_scope,
                          modified=r.modified) for key, r in records.items()}

    @staticmethod
    def _known(link: Link, shared: set[str] | frozenset[str] = frozenset()) -> Known:
        return Known(link.crm_key, link.crm_version, link.crm_hash, link.crm_snapshot,
                     link.remote_id, link.remote_version, link.remote_hash, link.remote_snapshot,
                     organizes=link.organizes, shared=link.crm_key in shared)

    def _crm_title(self, key: str) -> str:
        fetched = self.crm.fetch(self.kind, [key]).get(key)
        return self.title(fetched.record) if fetched else key

    def _point(self, label: str) -> None:
        if self._checkpoint is not None:
            self._checkpoint(label)

    def _say(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def _renew(self) -> None:
        # After every page and batch, but at most ten times per lease period: a statement
        # per batch is time a first sync of thousands of items waits on (bench/), and a lease
        # renewed a tenth of its period ago can be neither expired nor taken.
        now = time.monotonic()
        if now - self._renewed_at < leases.lease_ttl().total_seconds() / 10:
            return
        if not leases.renew(self.profile.pk, self.agenda, self.holder):
            raise MailboxError("The run lost its lease (it took too long without progress).")
        self._renewed_at = now


class ContactSync(AgendaSync):
    """Contacts: PRODUCT.md §4.2. Matched by e-mail address, or by name and company when
    neither side has one (engine/matching.py); scoped by Exchange categories and, in the CRM,
    by the profile's contact scope — its CRM user's persons, the whole organization or a
    classification branch (the CRM backend knows it)."""

    agenda = Agenda.CONTACTS
    kind = Kind.CONTACTS

    def agenda_settings(self) -> Any:
        return self.profile.contactsettings

    def synced_fields(self) -> frozenset[str]:
        return CONTACT_SYNCED

    @property
    def categories(self) -> set[str]:
        return {c.strip().lower() for c in self.settings.only_categories or [] if c.strip()}

    def remote_in_scope(self, record: Record) -> bool:
        wanted = self.categories
        return not wanted or any(c.lower() in wanted for c in getattr(record, "categories", ()))

    def outgoing(self, record: Record, crm_key: str) -> Record:
        record = super().outgoing(record, crm_key)
        if self.categories and not self.remote_in_scope(record):
            # Put it inside the chosen categories, or it would leave the scope at once.
            first = next(c.strip() for c in self.settings.only_categories if c.strip())
            record = dataclasses.replace(record, categories=(*record.categories, first))
        return record

    def match_keys(self, record: Record) -> list[str]:
        if not isinstance(record, ContactRecord):
            return []
        name = matching.record_name_key(record)
        return [name] if name else record.emails

    def crm_candidates(self, keys: list[str]) -> dict[str, list[str]]:
        names = [key for key in keys if matching.is_name_key(key)]
        found = self.crm.find_by_email([key for key in keys if key not in names])
        return {**found, **self.crm.find_by_name(names)} if names else found

    def describe_key(self, key: str) -> str:
        return "" if matching.is_name_key(key) else key

    def doubt(self, key: str, crm: Record | None, remote: Record | None) -> str:
        if isinstance(crm, ContactRecord) and isinstance(remote, ContactRecord):
            return matching.doubt(key, crm, remote)
        return ""

    def title(self, record: Record | None) -> str:
        if isinstance(record, ContactRecord):
            return record.shown_name()
        return super().title(record)


def plan_has_create(plan: Plan) -> bool:
    return any(w.key is None for w in plan.writes)


def _waits_for_exchange(planned: Planned) -> bool:
    """Whether the plan is done only after Exchange I/O: writes to Exchange, or a photo
    (read from one side, written to the other after the batch's Exchange writes)."""
    return any(w.side is Side.REMOTE or "photo_token" in w.fields for w in planned.plan.writes)


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


COUNTERS = {
    RunItem.Action.CREATE_CRM: "crm_created", RunItem.Action.UPDATE_CRM: "crm_updated",
    RunItem.Action.DELETE_CRM: "crm_deleted", RunItem.Action.CREATE_REMOTE: "remote_created",
    RunItem.Action.UPDATE_REMOTE: "remote_updated",
    RunItem.Action.DELETE_REMOTE: "remote_deleted", RunItem.Action.LINK: "linked",
    RunItem.Action.CONFLICT: "conflicts", RunItem.Action.SKIP: "skipped",
    RunItem.Action.ERROR: "errors", RunItem.Action.DUPLICATE: "duplicates",
}
