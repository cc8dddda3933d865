"""`python manage.py syncnow <profile id or mailbox> --agenda contacts [--dry-run]`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from engine.models import Agenda, Run
from engine.sync import sync
from profiles.models import SyncProfile


class Command(BaseCommand):
    help = "Run one sync of a profile's agenda in the foreground and print what it did."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("profile", help="the profile's id or its mailbox address")
        parser.add_argument("--agenda", choices=[a.value for a in Agenda],
                            default=Agenda.CONTACTS.value)
        parser.add_argument("--dry-run", action="store_true",
                            help="only analyse: show what a sync would do, change nothing")

    def handle(self, *args: Any, profile: str, agenda: str, dry_run: bool,
               **options: Any) -> None:
        found = (SyncProfile.objects.filter(pk=int(profile)) if profile.isdigit()
                 else SyncProfile.objects.filter(mailbox__iexact=profile.strip()))
        target = found.select_related("connection").first()
        if target is None:
            raise CommandError(f"No sync profile {profile!r}.")
        what = "Analysing" if dry_run else "Syncing"
        self.stdout.write(f"{what} {Agenda(agenda).label.lower()} of {target.mailbox}…")
        try:
            run = sync(target, agenda, dry_run=dry_run, trigger="command",
                       progress=lambda message: self.stdout.write(f"  {message}"))
        except NotImplementedError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(summary(run))
        if run.status in (Run.Status.FAILED, Run.Status.REFUSED, Run.Status.PAUSED):
            raise CommandError(f"The run {run.get_status_display()}: {run.message}")


def summary(run: Run) -> str:
    planned = " (planned, nothing changed)" if run.kind == Run.Kind.ANALYSIS else ""
    seconds = f"{run.duration:.1f} s" if run.duration is not None else "?"
    lines = [
        f"{run.get_status_display().capitalize()} in {seconds}, "
        f"{run.requests} Exchange requests{planned}.",
        f"  CRM:      {run.crm_created} created, {run.crm_updated} updated, "
        f"{run.crm_deleted} deleted",
        f"  Exchange: {run.remote_created} created, {run.remote_updated} updated, "
        f"{run.remote_deleted} deleted",
        f"  {run.linked} linked, {run.conflicts} conflicts, {run.skipped} skipped, "
        f"{run.errors} errors, {run.duplicates} duplicate candidates",
    ]
    if run.message:
        lines.append(f"  {run.message}")
    for item in run.items.filter(action__in=["error", "duplicate", "conflict"])[:20]:
        lines.append(f"  - {item.get_action_display()}: {item.title} — {item.detail}")
    return "\n".join(lines)
