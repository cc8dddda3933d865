"""Pause: an agenda whose job is paused does not run at all until it is resumed.

Pausing is per scheduled job (a profile's Pause pauses all its agendas; the jobs' own admin
pauses one). Every way a run starts honours it: the dispatcher skips paused jobs, the
listener queues nothing for them, Sync now and Analyze say so instead of queueing, and
`engine.sync.sync` — which every run goes through, a task queued before the pause included —
records a run that did not start, with the reason, instead of running. A run already going
on when the pause comes finishes.
"""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext as _

from engine.jobs import reconcile_jobs
from engine.models import Job, Run
from profiles.models import SyncProfile


def set_paused(profiles: list[SyncProfile], paused: bool) -> int:
    """Pause or resume every agenda of these profiles; returns how many jobs changed."""
    reconcile_jobs(profiles)   # a job made a moment later would not know of the pause
    return Job.objects.filter(profile__in=profiles).update(paused=paused)


def paused_agendas(profile_id: int) -> set[str]:
    return set(Job.objects.filter(profile_id=profile_id, paused=True)
               .values_list("agenda", flat=True))


def is_paused(profile_id: int, agenda: str) -> bool:
    return Job.objects.filter(profile_id=profile_id, agenda=agenda, paused=True).exists()


def record_not_started(profile: SyncProfile, agenda: str, *, dry_run: bool,
                       trigger: str) -> Run:
    """The history's note that a run of a paused agenda was asked for and did not start."""
    return Run.objects.create(
        profile=profile, agenda=agenda, trigger=trigger, status=Run.Status.PAUSED,
        kind=Run.Kind.ANALYSIS if dry_run else Run.Kind.SYNC, finished=timezone.now(),
        message=_("Not started: this agenda is paused. Nothing runs until an administrator "
                  "resumes it (Resume on the profile's page)."))
