"""Entry point: run one agenda of one profile, with the backends its configuration names."""

from __future__ import annotations

from collections.abc import Callable

from engine import pausing
from engine.calendar_sync import CalendarSync
from engine.crmstore import registry
from engine.crmstore.base import CrmBackend
from engine.mailbox import open_mailbox
from engine.models import Agenda, Run
from engine.progress import report as report_progress
from engine.runner import AgendaSync, ContactSync
from mailimport.importer import MailImport
from profiles.models import SyncProfile

RUNNERS: dict[str, type[AgendaSync]] = {Agenda.CONTACTS: ContactSync,
                                        Agenda.CALENDAR: CalendarSync,
                                        Agenda.MAIL: MailImport}


def crm_for(profile: SyncProfile, agenda: str) -> CrmBackend:
    """The CRM as this profile sees it, of the kind its organization's CRM connection names
    (the same for every agenda)."""
    return registry.crm_for(profile)


def sync(profile: SyncProfile, agenda: str, *, dry_run: bool = False, trigger: str = "manual",
         progress: Callable[[str], None] | None = None) -> Run:
    """One run of one agenda: every run, however started, goes through here."""
    try:
        runner_class = RUNNERS[Agenda(agenda)]
    except (KeyError, ValueError):
        raise NotImplementedError(f"The {agenda} agenda cannot be synced yet.") from None
    # Checked here, not only where runs are queued: a task queued before the pause (by the
    # schedule, the listener or Sync now) reaches a worker after it.
    if pausing.is_paused(profile.pk, agenda):
        return pausing.record_not_started(profile, agenda, dry_run=dry_run, trigger=trigger)

    def say(message: str) -> None:
        # What the run is doing shows on the dashboard too (the runner has its run by the
        # time it says anything).
        report_progress(runner.run_record, note=message)
        if progress is not None:
            progress(message)

    with open_mailbox(profile) as mailbox:
        runner = runner_class(profile, mailbox, crm_for(profile, agenda), dry_run=dry_run,
                              trigger=trigger, progress=say)
        return runner.run()
