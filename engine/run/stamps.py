"""Identity stamps written onto Exchange contacts linked without a write (imported, matched,
linked before stamps were written): what finds a contact again once moved."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from engine.crmstore.base import CrmBackend
from engine.mailbox.base import (
    FolderInfo,
    ItemRef,
    MailboxBackend,
    Update,
)
from engine.models import Link
from engine.plan_actions import Side
from engine.planner import Policy
from engine.records import ContactRecord, Kind
from engine.run.executor import BATCH, Planned
from engine.run.journal import Journal
from engine.run.link_table import LinkTable

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from engine.agendas.base import AgendaRules


class IdentityStamps:
    """Stamps due, written a batch at a time; the backfill of older links."""

    # Set up by TwoWaySync (engine/run/flow.py), for every part of the run.
    journal: Journal
    links: LinkTable
    rules: AgendaRules
    mailbox: MailboxBackend
    crm: CrmBackend
    kind: Kind
    policy: Policy
    folder: FolderInfo

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
        links = self.links.by_crm_key(d[0] for d in due)
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
            self.links.save_remote_versions(changed)

    def _backfill_stamps(self) -> None:
        """Contacts linked before the engine stamped imports and matches carry no identity
        stamp, so archiving one would delete its CRM person: they are stamped once, BATCH
        a request, with the versions their links hold (an item edited since is read next
        run and stamped then). The folder's state remembers that it was done, so a run
        with nothing to do still makes one request."""
        state = self.state
        if (state is None or state.stamps_checked or self.journal.dry_run
                or not self._stamps_needed()):
            return
        due = [(crm_key, remote_id, version)
               for crm_key, remote_id, version in self.links.active_pairs()
               if self._read_stamps.get(remote_id) != self.crm.stamp(self.kind, crm_key)]
        for start in range(0, len(due), BATCH):
            self._write_stamps(due[start:start + BATCH])
            self.journal.renew()
        self.links.save_state(state, stamps_checked=True)

    def _stamps_needed(self) -> bool:
        """Whether the identity stamp is what finds this agenda's items once moved: contacts
        (events are found by their meeting's id), on a mailbox whose ids change on a move."""
        return self.kind is Kind.CONTACTS and not self.mailbox.ids_survive_moves

    def _stamp_due(self, planned: Planned, crm_key: str, remote_id: str) -> bool:
        """Whether a link this plan keeps leaves its Exchange contact without its identity
        stamp, on a mailbox whose ids change when items move: an item the plan did not write
        to (a write carries the stamp) that was not read with it (made in Outlook and
        imported, matched to a CRM person, linked before stamps were written)."""
        return (self._stamps_needed()
                and not any(w.side is Side.REMOTE for w in planned.plan.writes)
                and self._read_stamps.get(remote_id) != self.crm.stamp(self.kind, crm_key))
