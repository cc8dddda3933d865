"""Entry point: run one agenda of one profile, with the backends its configuration names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string
from django.utils.translation import gettext

from engine import crm_switch, pausing
from engine.crmstore import registry
from engine.crmstore.base import CrmBackend
from engine.mailbox import open_mailbox
from engine.models import Agenda, Run
from engine.progress import report as report_progress
from profiles.models import SyncProfile

# The runner of each agenda, by dotted path (imported when a run starts, so that the engine
# does not import the apps that run agendas of their own, such as the e-mail import).
# SYNC_AGENDA_RUNNERS in the settings replaces any of them.
RUNNERS: dict[str, str] = {
    Agenda.CONTACTS: "engine.agendas.contacts.ContactSync",
    Agenda.CALENDAR: "engine.agendas.calendar.CalendarSync",
    Agenda.MAIL: "mailimport.importer.MailImport",
    **getattr(settings, "SYNC_AGENDA_RUNNERS", {}),
}


def runner_class(agenda: str) -> Any:
    """The class that runs this agenda: built with (profile, mailbox, crm, options)."""
    try:
        return import_string(RUNNERS[Agenda(agenda)])
    except (KeyError, ValueError):
        raise NotImplementedError(f"The {agenda} agenda cannot be synced yet.") from None


def crm_for(profile: SyncProfile, agenda: str) -> CrmBackend:
    """The CRM as this profile sees it, of the kind its organization's CRM connection names
    (the same for every agenda)."""
    return registry.crm_for(profile)


def sync(profile: SyncProfile, agenda: str, *, dry_run: bool = False, trigger: str = "manual",
         progress: Callable[[str], None] | None = None) -> Run:
    """One run of one agenda: every run, however started, goes through here."""
    runner = runner_class(agenda)
    # Checked here, not only where runs are queued: a task queued before the pause (by the
    # schedule, the listener or Sync now) reaches a worker after it.
    if pausing.is_paused(profile.pk, agenda):
        return pausing.record_not_started(profile, agenda, dry_run=dry_run, trigger=trigger)

    def say(message: str) -> None:
        # What the run is doing shows on the dashboard too (the runner has its run by the
        # time it says anything).
        report_progress(sync_run.run_record, note=message)
        if progress is not None:
            progress(message)

    # Links and cursors of another CRM mean nothing in the one the organization reaches now
    # (not in a dry run, which changes nothing: it reports what a run with them would do).
    # The organization's CRM connection is read once, for both.
    connection = registry.connection_of(profile.organization_id)
    reached = registry.reached_by(profile.organization_id, connection)
    if not dry_run and crm_switch.bind(profile, agenda, reached) and progress is not None:
        progress(gettext("The organization's CRM changed: this run matches both sides anew."))

    with open_mailbox(profile) as mailbox:
        sync_run = runner(profile, mailbox, registry.crm_for(profile, connection),
                          dry_run=dry_run, trigger=trigger, progress=say)
        return sync_run.run()
