"""Force resync: forget what the engine remembers of one agenda, so the next run matches anew.

Forgotten: the folder sync states and CRM cursor (`FolderState`), the links, the items parked
for matching and the pending retries. Kept: the records on both sides, and the duplicate
candidates with the decisions people made on them (a pair kept apart stays apart, a pair linked
by hand is linked again).

The next run then reads both sides whole and runs the initial matching. It creates no
duplicates: every record the server ever created carries its partner's identity (the identity
stamps of ARCHITECTURE §3) and is linked again by it; records that merely share an e-mail
address (contacts) or a meeting UID (events) are matched as on a first sync.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import transaction

from engine import leases
from engine.models import DuplicateCandidate, FolderState, Link, PendingItem, Retry


@dataclass(frozen=True)
class Forgotten:
    folder_states: int
    links: int
    pending: int
    retries: int


def state_counts(profile_id: int, agenda: str) -> Forgotten:
    """What a force resync of this agenda would forget (for the confirmation page)."""
    where = {"profile_id": profile_id, "agenda": agenda}
    return Forgotten(FolderState.objects.filter(**where).count(),
                     Link.objects.filter(**where).count(),
                     PendingItem.objects.filter(**where).count(),
                     Retry.objects.filter(**where).count())


def force_resync(profile_id: int, agenda: str) -> Forgotten | None:
    """Forget the agenda's sync state; None when a run holds the agenda right now.

    The agenda's lease is held meanwhile, so no run can read half-forgotten state or write
    links back after they were deleted."""
    holder = f"resync:{uuid.uuid4().hex}"
    if not leases.claim(profile_id, agenda, holder):
        return None
    try:
        forgotten = state_counts(profile_id, agenda)
        where = {"profile_id": profile_id, "agenda": agenda}
        with transaction.atomic():
            FolderState.objects.filter(**where).delete()
            Link.objects.filter(**where).delete()
            PendingItem.objects.filter(**where).delete()
            Retry.objects.filter(**where).delete()
            # A pair a person linked carries no identity stamp: without its link it would
            # look like two records again. The decision is carried out anew by the next run.
            DuplicateCandidate.objects.filter(
                **where, decision=DuplicateCandidate.Decision.LINKED).update(applied=False)
        return forgotten
    finally:
        leases.release(profile_id, agenda, holder)
