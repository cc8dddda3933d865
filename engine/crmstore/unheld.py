"""The record fields a kind of CRM has no place for (`CrmBackend.unheld_fields`), as the
engine and the admin use them.

A CRM that cannot hold a field would read it back empty: compared with Exchange run after
run, the empty value would look like an edit made in the CRM and blank the field in
Exchange (a contact's middle name, an event's all-day flag). So the agendas leave these
fields out of what they hand to the CRM and of what they compare (`without_unheld`,
`compared`), and Exchange keeps its own values.

One exception: an event's time zone. A single event's zone is a field a CRM may lack; a
series' zone is part of its rule (a weekly 09:00 meeting in Prague stays at 09:00 across
DST), held by every CRM that holds series. Unheld, the zone is left out of single events
only. A CRM holding series without their zone would declare `recurrence` unheld too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from engine.crmstore.base import CAPABILITY_FIELDS, Capability, CrmBackend
from engine.records import ContactRecord, EventRecord, Kind, Record

# Part of a series' rule: kept with a series even by a CRM whose single events have none.
RULE_PART = "time_zone"


def held_capabilities(unheld: Mapping[Kind, Iterable[str]]) -> frozenset[Capability]:
    """The capabilities standing for fields (CAPABILITY_FIELDS) that a kind lacking
    `unheld` has: those none of whose fields it lacks. A kind declaring its unheld fields
    derives these capabilities from them, so that the two cannot disagree."""
    return frozenset(
        capability for capability, fields in CAPABILITY_FIELDS.items()
        if not any(set(names) & set(unheld.get(kind, ())) for kind, names in fields.items()))


def disagreements(backend: type[CrmBackend]) -> list[str]:
    """What a kind's capabilities and unheld fields say against each other, in words: a
    capability whose fields it cannot hold, or none of them lacking without it."""
    found = []
    for capability, fields in CAPABILITY_FIELDS.items():
        lacking = sorted(name for kind, names in fields.items()
                         for name in names & backend.unheld(kind))
        if capability in backend.capabilities and lacking:
            found.append(f"it has the capability {capability.value} but cannot hold "
                         f"{', '.join(lacking)}")
        elif capability not in backend.capabilities and not lacking:
            found.append(f"it lacks the capability {capability.value} but holds "
                         f"{', '.join(sorted(n for names in fields.values() for n in names))}")
    return found


def compared(kind: Kind, fields: frozenset[str], unheld: frozenset[str]) -> frozenset[str]:
    """Of an agenda's synced `fields`, those compared and written with this CRM: less what
    it cannot hold, but with a series' zone (blanked on single events by `without_unheld`)."""
    kept = fields - unheld
    if kind is Kind.CALENDAR and RULE_PART in fields:
        kept |= {RULE_PART}
    return kept


def without_unheld(record: Record, unheld: frozenset[str]) -> Record:
    """`record` with the fields the CRM cannot hold blank, as the CRM would read it back."""
    if not unheld:
        return record
    if isinstance(record, ContactRecord):
        blank = ContactRecord()
        return dataclasses.replace(record, **{name: getattr(blank, name) for name in unheld
                                              if hasattr(blank, name)})
    if isinstance(record, EventRecord):
        blank_event = EventRecord()
        names = {name for name in unheld if hasattr(blank_event, name)}
        if record.recurrence is not None:
            names.discard(RULE_PART)
        changes = {name: getattr(blank_event, name) for name in names}
        if record.exceptions:
            # A moved occurrence holds only what an occurrence can change.
            changes["exceptions"] = [without_unheld(e, unheld - {RULE_PART})
                                     for e in record.exceptions]
        return dataclasses.replace(record, **changes)
    return record


def with_exchange_values(record: Record, current: Record, unheld: frozenset[str]) -> Record:
    """`record`, about to be written over the Exchange item `current`, with the item's own
    values of the fields the CRM cannot hold (a series' zone is the CRM's: part of its
    rule). The mailbox writes some fields together, and they are not to lose these."""
    if type(record) is not type(current):
        return record
    names = {name for name in unheld if hasattr(record, name)}
    if isinstance(record, EventRecord) and record.recurrence is not None:
        names.discard(RULE_PART)
    return dataclasses.replace(record, **{name: getattr(current, name) for name in names})
