"""Identity stamps written onto Exchange contacts linked without a write (imported, matched,
linked before stamps were written): what finds a contact again once moved."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable

from engine.crmstore.base import CrmBackend
from engine.mailbox.background import Pending
from engine.mailbox.base import ItemChange, ItemRef, MailboxBackend, Update, WriteResult
from engine.models import FolderState
from engine.plan_actions import Plan, Side
from engine.records import ContactRecord, Kind
from engine.run.executor import BATCH
from engine.run.journal import Journal
from engine.run.link_table import LinkTable

log = logging.getLogger(__name__)


class IdentityStamps:
    """The stamps a run owes its contacts, and their writing: those due as links are saved,
    a batch at a time, and once per folder the backfill of links made before stamps were
    written."""

    def __init__(self, journal: Journal, links: LinkTable, mailbox: MailboxBackend,
                 crm: CrmBackend, kind: Kind, *, settle: Callable[[], None]) -> None:
        self.journal = journal
        self.links = links
        self.mailbox = mailbox
        self.crm = crm
        self.kind = kind
        # Settles the Exchange writes under way: one batch of them at a time.
        self._settle = settle
        self.wrote_remote = False
        # Contacts linked in this run whose Exchange item is still to get its identity stamp:
        # crm key, item id, the version the link holds. And the stamp each contact read in
        # this run carried, so that one already stamped is not written again.
        self._due: list[tuple[str, str, str]] = []
        self._read: dict[str, str] = {}
        # A batch of stamps sent and not yet answered (write_due with `overlap`).
        self._in_flight: tuple[list[tuple[str, str, str]], Pending[list[WriteResult]]] | None \
            = None

    def needed(self) -> bool:
        """Whether the identity stamp is what finds this agenda's items once moved: contacts
        (events are found by their meeting's id), on a mailbox whose ids change on a move."""
        return self.kind is Kind.CONTACTS and not self.mailbox.ids_survive_moves

    def note_read(self, changes: Iterable[ItemChange]) -> None:
        """The stamps the items read carry."""
        if self.needed():
            self._read.update((c.ref.id, c.record.stamp) for c in changes
                              if c.record is not None)

    def _stamp_due(self, plan: Plan, crm_key: str, remote_id: str) -> bool:
        """Whether a link this plan keeps leaves its Exchange contact without its identity
        stamp, on a mailbox whose ids change when items move: an item the plan did not write
        to (a write carries the stamp) that was not read with it (made in Outlook and
        imported, matched to a CRM person, linked before stamps were written)."""
        return (self.needed()
                and not any(w.side is Side.REMOTE for w in plan.writes)
                and self._read.get(remote_id) != self.crm.stamp(self.kind, crm_key))

    def owe(self, plan: Plan, crm_key: str, remote_id: str, version: str) -> None:
        """A link saved: its contact's stamp is written later if it is due."""
        if self._stamp_due(plan, crm_key, remote_id):
            self._due.append((crm_key, remote_id, version))

    def write_due(self, at_least: int = 1, overlap: bool = False) -> None:
        """Write the identity stamp (the CRM key) onto the Exchange contacts this run linked
        without writing to them (imported from Exchange, or matched to a CRM person), one
        UpdateItem per BATCH setting nothing else, once their links are saved. On EWS an
        item's id changes when it moves, and the stamp is what finds it again (_moved):
        without it a contact made in Outlook and then archived would be taken for deleted.
        The stamp changes the item's version: the link takes the new one, so the write does
        not come back as a change. A write refused (the item edited meanwhile) leaves the
        link as it was: the edit is read next run, and the stamp is written then.

        With `overlap` the UpdateItem may still be under way when this returns: its answer
        is taken by the next write_due (or settle()), so Exchange stamps one batch while the
        run writes the next one to the CRM (a first import of 10,000 contacts waited a
        quarter of its time on these answers; bench/). Without it, nothing is left under
        way: the stamped items' new versions are on their links before Exchange's next page
        of changes is listed, else they would be fetched again and counted as changes."""
        due = self._due
        if due and len(due) >= at_least:
            self._due = []
            self._send(due)
        if not overlap:
            self.settle()

    def settle(self) -> None:
        """The stamps under way: their answers, and the links' new versions."""
        if self._in_flight is None:
            return
        due, sending = self._in_flight
        self._in_flight = None
        self._apply(due, sending.result())

    def backfill(self, state: FolderState | None) -> None:
        """Contacts linked before the engine stamped imports and matches carry no identity
        stamp, so archiving one would delete its CRM person: they are stamped once, BATCH
        a request, with the versions their links hold (an item edited since is read next
        run and stamped then). The folder's state remembers that it was done, so a run
        with nothing to do still makes one request. A dry run writes none."""
        if (state is None or state.stamps_checked or self.journal.dry_run
                or not self.needed()):
            return
        due = [(crm_key, remote_id, version)
               for crm_key, remote_id, version in self.links.active_pairs()
               if self._read.get(remote_id) != self.crm.stamp(self.kind, crm_key)]
        for start in range(0, len(due), BATCH):
            self._send(due[start:start + BATCH])
            self.settle()
            self.journal.renew()
        self.links.save_state(state, stamps_checked=True)

    def _send(self, due: list[tuple[str, str, str]]) -> None:
        """One UpdateItem for `due`, started after every Exchange write before it is
        answered (one batch of them under way at a time)."""
        self._settle()
        self.settle()
        updates = [Update(ItemRef(remote_id, version),
                          ContactRecord(stamp=self.crm.stamp(self.kind, crm_key)),
                          frozenset({"stamp"}))
                   for crm_key, remote_id, version in due]
        self.wrote_remote = True
        self._in_flight = (due, self.mailbox.start(
            functools.partial(self.mailbox.update, self.kind, updates)))

    def _apply(self, due: list[tuple[str, str, str]], results: list[WriteResult]) -> None:
        """The links of the stamped items take the items' new versions."""
        links = self.links.remote_versions(d[0] for d in due)
        moved_on: list[tuple[int, str]] = []
        for (crm_key, remote_id, version), result in zip(due, results, strict=False):
            link = links.get(crm_key)
            if not result.ok or result.ref is None:
                log.info("The identity stamp of %s was not written: %s", remote_id,
                         result.message)
            elif (link is not None and link[1:] == (remote_id, version)
                  and result.ref.id == remote_id):
                moved_on.append((link[0], result.ref.version))
        self.links.save_remote_versions(moved_on)
