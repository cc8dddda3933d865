"""Contacts: PRODUCT.md §4.2. Matched by e-mail address, or by name and company when
neither side has one (engine/matching.py); scoped by Exchange categories and, in the CRM,
by the profile's contact scope — its CRM user's persons, the whole organization or a
classification branch (the CRM backend knows it)."""

from __future__ import annotations

import dataclasses
from typing import Any

from engine import matching
from engine.agendas.base import AgendaRules
from engine.crmstore.base import CrmBackend
from engine.crmstore.unheld import compared, without_unheld
from engine.mailbox.base import MailboxBackend
from engine.models import Agenda
from engine.records import ContactRecord, Kind, Record
from engine.run.flow import TwoWaySync
from profiles.models import SyncProfile

CONTACT_SYNCED = frozenset(f.name for f in dataclasses.fields(ContactRecord)) - {
    "display_name", "categories", "stamp", "modified"}


class ContactRules(AgendaRules):
    agenda = Agenda.CONTACTS
    kind = Kind.CONTACTS

    def __init__(self, profile: SyncProfile, crm: CrmBackend) -> None:
        # What this CRM can hold, known before the policy is made of it: what it cannot
        # (engine/crmstore/unheld.py) is neither written to it nor compared with it, so an
        # Exchange contact's middle name is left as it is there.
        self.left_out = crm.unheld(self.kind) & CONTACT_SYNCED
        self.synced_fields = compared(self.kind, CONTACT_SYNCED, self.left_out)
        super().__init__(profile, crm)

    def agenda_settings(self) -> Any:
        return self.profile.contactsettings

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

    def incoming(self, record: Record) -> Record:
        # What the CRM cannot hold is not handed to it, even on a create.
        return without_unheld(record, self.left_out)

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


class ContactSync(TwoWaySync):
    """One run of a profile's contacts: the two-way sync with the contact rules."""

    def __init__(self, profile: SyncProfile, mailbox: MailboxBackend, crm: CrmBackend,
                 **options: Any) -> None:
        super().__init__(ContactRules(profile, crm), mailbox, **options)
