"""Reading Exchange's changes: each planned against its link and the CRM's pending change;
new unlinked items parked until the whole folder is read, then matched (stamps, then
match keys unique on both sides), created, or listed as duplicate candidates."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from engine.mailbox.base import (
    ChangeType,
    ItemChange,
    ItemError,
    ItemRef,
    Sought,
)
from engine.models import Link, RunItem
from engine.plan_actions import Duplicate, Plan, Side
from engine.planner import Seen, plan_linked, plan_match, plan_new, plan_recovered
from engine.records import Record
from engine.run.crm_changes import PendingCrmChanges
from engine.run.executor import BATCH, Planned, plan_has_create
from engine.run.parts import RunPart

if TYPE_CHECKING:
    pass

# At most this many parked records are kept in memory for matching (the rest are fetched
# again): ~2 kB each, so a first import of a huge mailbox stays within tens of MB.
PARKED_IN_MEMORY = 10_000


class ExchangeReading(RunPart):
    """The part of a two-way run that reads Exchange."""

    def _handle_changes(self, changes: list[ItemChange], errors: list[ItemError],
                        pending: PendingCrmChanges) -> None:
        """Exchange's changes, however read (a page of the folder's, items fetched again for
        a retry, the window's, parked items already linked): planned against their links and
        the CRM's pending changes, and written; new unlinked items go on to be parked."""
        for error in errors:
            self.journal.line(RunItem.Action.ERROR, error.ref.id if error.ref else "",
                              remote_id=error.ref.id if error.ref else "",
                              detail=error.message)
        self.stamps.note_read(changes)
        # Items known in exactly this version (this run's own writes read back, a page of a
        # first read after an export) need nothing more: their links are not even loaded.
        changes = [c for c in changes if c.type is ChangeType.DELETE or c.record is not None]
        if not changes:
            return   # the usual page of a run that finds nothing: no query to build
        links = self.links.by_remote_id([c.ref.id for c in changes])
        stamped = {c.ref.id: self.crm.key_from_stamp(self.kind, c.record.stamp)
                   for c in changes if c.record is not None and c.record.stamp}
        stamp_links = self.links.by_crm_key([k for k in stamped.values() if k])
        origins = self.crm.find_by_origin(self.kind, [c.ref.id for c in changes
                                                      if c.ref.id not in links])
        crm_side = self._crm_seen({
            *(link.crm_key for link in links.values() if link.crm_key in pending),
            *(k for k in stamped.values() if k), *origins.values()})
        moved = self._moved([links[c.ref.id] for c in changes
                             if c.type is ChangeType.DELETE and c.ref.id in links
                             and links[c.ref.id].state != Link.State.UNLINKED])
        batch: list[Planned] = []
        to_park: list[tuple[ItemRef, Record]] = []
        shared = self.rules.shared_keys([link.crm_key for link in links.values()])
        for change in changes:
            link = links.get(change.ref.id)
            if change.type is ChangeType.DELETE:
                if link is not None:
                    crm = pending.take_side(link.crm_key, crm_side)
                    remote = Seen(change.ref.id, "", None,
                                  moved_to=moved.get(change.ref.id, ""))
                    known = self._known(link, shared)
                    if crm is None:   # the CRM side did not change: is it still in scope?
                        known.in_scope = self.rules.snapshot_in_scope(link.crm_snapshot)
                    batch.append(self._planned(plan_linked(known, crm, remote,
                                                           self.policy), link))
                self.links.unpark([change.ref.id])
                continue
            if change.record is None:
                continue   # (left out above; kept for the type checker)
            record = self.rules.incoming(change.record)
            remote = Seen(change.ref.id, change.ref.version, record,
                          in_scope=self.rules.remote_in_scope(record),
                          modified=getattr(record, "modified", None))
            title = self.rules.title(record)
            if link is not None:
                crm = pending.take_side(link.crm_key, crm_side)
                if link.state != Link.State.ACTIVE:
                    continue   # its deletion is already decided; the guard handles it
                batch.append(self._planned(plan_linked(self._known(link, shared), crm, remote,
                                                       self.policy), link, title))
                continue
            # Not linked: a stamp or an origin names its CRM partner (our own earlier write).
            key = stamped.get(change.ref.id) or origins.get(change.ref.id)
            partner = crm_side.get(key) if key else None
            if partner is not None and key not in stamp_links:
                pending.take(key)
                batch.append(self._planned(plan_recovered(partner, remote, self.policy),
                                           None, title))
                continue
            if key and partner is None and stamped.get(change.ref.id) == key:
                # Our own copy of a CRM record deleted before its link was saved (a crash in
                # between): importing it would bring the deleted record back.
                self.journal.line(RunItem.Action.SKIP, title, key, change.ref.id,
                                  "a copy of a CRM record that was deleted meanwhile; left alone")
                continue
            if not remote.in_scope:
                continue   # never synced and outside the chosen categories: nothing to do
            to_park.append((change.ref, record))
        self.executor.execute(batch)
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
        keys = {key for _, record in items for key in self.rules.match_keys(record)}
        candidates = self._crm_candidates(list(keys)) if keys else {}
        now: list[Planned] = []
        to_park: list[tuple[ItemRef, Record]] = []
        for ref, record in items:
            # After the first run every new item waits for the mass-creation guard's count.
            if not self._first_run or any(candidates.get(key)
                                          for key in self.rules.match_keys(record)):
                to_park.append((ref, record))
                continue
            remote = Seen(ref.id, ref.version, record,
                          modified=getattr(record, "modified", None))
            now.append(self._planned(plan_new(Side.REMOTE, remote, self.policy), None,
                                     self.rules.title(record)))
        self._park(to_park, remember=True)
        self.executor.execute(now)
        self._imported_keys.update(p.crm_key for p in now if p.crm_key)

    def _crm_candidates(self, keys: list[str]) -> dict[str, list[str]]:
        """crm_candidates, leaving out the records this run created from Exchange items."""
        found = self.rules.crm_candidates(keys)
        if not self._imported_keys:
            return found
        return {key: [k for k in crm_keys if k not in self._imported_keys]
                for key, crm_keys in found.items()}

    def _park(self, items: list[tuple[ItemRef, Record]], *, remember: bool = False) -> None:
        """New Exchange items parked until the whole folder is read; with `remember`, their
        records are kept (up to PARKED_IN_MEMORY) so that matching them need not fetch them
        again."""
        if remember:
            for ref, record in items:
                if len(self._parked_records) < PARKED_IN_MEMORY:
                    self._parked_records[ref.id] = (ref, record)
        self.links.park([(ref.id, self.rules.match_keys(record)) for ref, record in items])

    def _match_parked(self, pending: PendingCrmChanges) -> None:
        """New Exchange items, now that the whole folder is read: link, hold or create."""
        parked = self.links.parked()
        if not parked:
            return
        per_address: dict[str, int] = defaultdict(int)
        for _, emails in parked:
            for address in set(emails):
                per_address[address] += 1
        crm_by_address = self._crm_candidates(list(per_address))
        candidates = {k for keys in crm_by_address.values() for k in keys}
        linked = self.links.linked_crm_keys(candidates)
        apart = self.links.kept_apart()
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
            already = self.links.linked_remote_ids(rid for rid, _ in chunk)
            self._handle_changes(
                [ItemChange(ChangeType.UPSERT, result[0], result[1])
                 for (remote_id, _), result in zip(chunk, fetched, strict=False)
                 if remote_id in already and not isinstance(result, ItemError)],
                [], pending)
            batch: list[Planned] = []
            held: set[str] = set()
            for (remote_id, emails), result in zip(chunk, fetched, strict=False):
                if remote_id in already:
                    continue
                if isinstance(result, ItemError):
                    if result.code != "ErrorItemNotFound":
                        self.journal.line(RunItem.Action.ERROR, remote_id, remote_id=remote_id,
                                          detail=result.message)
                    continue
                ref, record = result
                record = self.rules.incoming(record)
                if not self.rules.remote_in_scope(record):
                    # Parked by a run killed before it matched, and out of scope since (an
                    # event that left the window): left alone like any other. Its partner
                    # may be out of scope too, and importing it would double the pair.
                    continue
                remote = Seen(ref.id, ref.version, record,
                              modified=getattr(record, "modified", None))
                planned = self._decide_new_remote(remote, emails, crm_by_address, per_address,
                                                  linked, apart, crm_side, pending)
                if hold and plan_has_create(planned.plan):
                    self._hold_creation(planned)
                    held.add(remote_id)   # stays parked for the run that may create it
                    continue
                planned.unpark = remote_id
                batch.append(planned)
            # The batch's Exchange writes (matched pairs filled in) overlap what follows; each
            # item stays parked until its plan is recorded (Recorder.record_batch), so a crash
            # before then finds it parked again.
            self.executor.execute(batch, overlap=True)
            settled = {planned.unpark for planned in batch} | held
            self.links.unpark([rid for rid, _ in chunk if rid not in settled])
            self.stamps.write_due(at_least=BATCH, overlap=True)
            self.journal.renew()

    def _parked_items(self, remote_ids: list[str]) -> list[Any]:
        """The parked items' records: read in this run already, or fetched (in order)."""
        missing = [ItemRef(rid) for rid in remote_ids if rid not in self._parked_records]
        fetched = iter(self.mailbox.fetch(self.kind, missing) if missing else [])
        return [self._parked_records.pop(rid) if rid in self._parked_records
                else next(fetched) for rid in remote_ids]

    def _decide_new_remote(self, remote: Seen, emails: list[str],
                           crm_by_address: dict[str, list[str]], per_address: dict[str, int],
                           linked: set[str], apart: set[tuple[str, str]],
                           crm_side: dict[str, Seen], pending: PendingCrmChanges) -> Planned:
        title = self.rules.title(remote.record)
        pairs = [(a, k) for a in dict.fromkeys(emails) for k in crm_by_address.get(a, [])
                 if (k, remote.key) not in apart]
        if not pairs:
            return self._planned(plan_new(Side.REMOTE, remote, self.policy), None, title)
        keys = {k for _, k in pairs}
        unique = (len(keys) == 1 and not (keys & linked)
                  and all(per_address[a] == 1 for a, _ in pairs)
                  and all(len(crm_by_address[a]) == 1 for a, _ in pairs))
        key = next(iter(keys))
        doubts = {(a, k): self.rules.doubt(a, crm_side[k].record, remote.record)
                  if k in crm_side else "" for a, k in pairs}
        if unique and key in crm_side and not any(doubts.values()):
            linked.add(key)
            pending.take(key)
            return self._planned(plan_match(crm_side[key], remote, self.policy), None, title)
        plan = Plan()
        fields = self.rules.candidate_fields(remote.record) if remote.record is not None else {}
        for address, crm_key in pairs:
            plan.add(Duplicate(crm_key, remote.key, self.rules.describe_key(address),
                               doubts[address, crm_key], fields))
        return Planned(plan, title, remote_id=remote.key)
