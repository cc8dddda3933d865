"""When an organization's CRM connection reaches another CRM, what a profile's agenda
remembers of the old one is forgotten before its next run.

Links, parked items, retries and CRM cursors name the old CRM's records: kept, a contact
linked before the switch would be looked up in the new CRM by its old key on every run, and
a duplicate candidate would name a record of the other CRM. Forgotten, the next run reads
both sides whole and matches them as a first sync does (engine/resync.py; nothing is deleted
on either side, and the identity stamps of the old CRM are not the new one's, so nothing is
matched by them).
"""

from __future__ import annotations

import logging

from engine import resync
from engine.crmstore import registry
from engine.models import CrmBinding, DuplicateCandidate
from profiles.models import SyncProfile

log = logging.getLogger(__name__)


def bind(profile: SyncProfile, agenda: str, reached: str | None = None) -> bool:
    """Make sure the agenda's sync state is that of the CRM its organization reaches now
    (`reached`, CrmBackend.reached_by, when the caller knows it already).
    True when the state of another CRM was forgotten now; False when there was nothing to
    forget, or when a run holds the agenda (the next run forgets it)."""
    if reached is None:
        reached = registry.reached_by(profile.organization_id)
    binding = CrmBinding.objects.filter(profile=profile, agenda=agenda).first()
    if binding is None:
        # The agenda's first run since bindings exist: whatever it remembers was made with
        # the CRM reached now (an installation upgraded syncs the built-in store, as before).
        CrmBinding.objects.get_or_create(profile=profile, agenda=agenda,
                                         defaults={"crm": reached})
        return False
    if binding.crm == reached:
        return False
    forgotten = resync.force_resync(profile.pk, agenda)
    if forgotten is None:
        return False   # a run holds the agenda: the binding stays, the next run forgets
    # The pairs name records of the other CRM, and the decisions taken on them too.
    DuplicateCandidate.objects.filter(profile=profile, agenda=agenda).delete()
    CrmBinding.objects.filter(pk=binding.pk).update(crm=reached)
    log.info("Profile %s, %s: the CRM changed (%s -> %s); %d links forgotten",
             profile.pk, agenda, binding.crm, reached, forgotten.links)
    return True
