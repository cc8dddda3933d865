"""Entry point: run one agenda of one profile, with the backends its configuration names."""

from __future__ import annotations

from collections.abc import Callable

from engine.crmstore.builtin import BuiltinCrm
from engine.mailbox import open_mailbox
from engine.models import Agenda, Run
from engine.runner import ContactSync
from profiles.models import SyncProfile

RUNNERS = {Agenda.CONTACTS: ContactSync}


def crm_for(profile: SyncProfile, agenda: str) -> BuiltinCrm:
    node_id = None
    if agenda == Agenda.CONTACTS:
        node_id = profile.contactsettings.classification_node_id
    return BuiltinCrm(profile.organization_id, classification_node_id=node_id)


def sync(profile: SyncProfile, agenda: str, *, dry_run: bool = False, trigger: str = "manual",
         progress: Callable[[str], None] | None = None) -> Run:
    try:
        runner_class = RUNNERS[Agenda(agenda)]
    except (KeyError, ValueError):
        raise NotImplementedError(f"The {agenda} agenda cannot be synced yet.") from None
    with open_mailbox(profile) as mailbox:
        runner = runner_class(profile, mailbox, crm_for(profile, agenda), dry_run=dry_run,
                              trigger=trigger, progress=progress)
        return runner.run()
