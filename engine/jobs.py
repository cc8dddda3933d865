"""Scheduling: which agenda of which profile runs when, and the django-q2 tasks that run them.

- One django-q2 `Schedule` (created on `migrate`, see `ensure_schedule`) calls `dispatch` every
  minute. `dispatch` keeps one `Job` row per enabled agenda of each active profile, picks the
  due, unpaused ones, moves their next run time forward *before* enqueueing them (with a
  conditional UPDATE per 500 jobs, so two dispatchers or a slow queue never enqueue the same
  job twice), and enqueues one `run_job` task per job.
- `run_job` runs one agenda through `engine.sync.sync` (whose lease makes a second delivery of
  the same task harmless: it is refused, and a refused run is not a failure; a run of an agenda
  paused since it was queued does not start either, see `engine.pausing`), then records the
  result on the job: success → next run after the profile's interval; failure → exponential
  back-off, and the alerts in `engine.alerts`. A run that held the lease also closes the runs
  of its agenda that a dead worker left "running" (`close_abandoned_runs`).

Neither task ever raises into the worker loop: with `ack_failures` a raised task would be
dropped anyway, and the error belongs in the sync history, not in django-q2's failure list.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Q
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task

from engine import alerts, leases
from engine.mailbox.base import internal_error
from engine.models import Agenda, Heartbeat, Job, Run
from profiles.models import SyncProfile

log = logging.getLogger(__name__)

DISPATCH_FUNC = "engine.jobs.dispatch"
RUN_FUNC = "engine.jobs.run_job"
SCHEDULE_NAME = "Dispatch due syncs"
# Failures push a job's next run out exponentially, but never further than this (or than the
# profile's own interval, when that is longer: back-off must not make retries more frequent).
MAX_BACKOFF = dt.timedelta(hours=1)
# A job enqueued and not started within this time is taken for lost (a Redis broker drops
# the tasks of a worker that dies) and enqueued again. Matches Q_CLUSTER["retry"], after
# which the ORM broker would hand the task out again anyway.
LOST_AFTER = dt.timedelta(minutes=20)
WORKER_HEARTBEAT = "worker"
# How often a process's runs write the worker heartbeat at most (WORKER_SEEN_WITHIN is 2 min).
RUN_BEAT_EVERY = dt.timedelta(seconds=10)
# The per-agenda settings rows of a profile (one-to-one), read with it by a run.
AGENDA_SETTINGS = ("calendarsettings", "contactsettings", "mailsettings")
# Due jobs claimed per statement (well below every database's limit on parameters).
CLAIM_CHUNK = 500
ABANDONED = ("The worker running this stopped before it finished (killed, crashed or its "
             "machine lost); its lease expired and a later run took over.")

# Runs that did not start: they hold no lease and leave the job as it was.
NOT_STARTED = (Run.Status.REFUSED, Run.Status.PAUSED)

# Which profile switch turns each agenda on.
AGENDA_SWITCHES: dict[str, str] = {
    Agenda.CONTACTS: "sync_contacts",
    Agenda.CALENDAR: "sync_calendar",
    Agenda.MAIL: "import_mail",
}


# --- which jobs exist ----------------------------------------------------------------------
def runnable_agendas() -> set[str]:
    """Agendas the engine can run at all (an agenda without a runner gets no job yet)."""
    from engine.sync import RUNNERS  # the runners import a lot: only when needed

    return {str(agenda) for agenda in RUNNERS}


def enabled_agendas(profile: SyncProfile) -> list[str]:
    runnable = runnable_agendas()
    return [agenda for agenda, switch in AGENDA_SWITCHES.items()
            if getattr(profile, switch) and agenda in runnable]


def reconcile_jobs(profiles: Iterable[SyncProfile] | None = None) -> None:
    """Create the jobs of enabled agendas of active profiles and delete every other job
    (of `profiles`, or of all profiles)."""
    scope = Job.objects.all()
    if profiles is None:
        candidates: Iterable[SyncProfile] = SyncProfile.objects.filter(active=True).only(
            "pk", "active", *AGENDA_SWITCHES.values())
    else:
        candidates = list(profiles)
        scope = scope.filter(profile_id__in=[p.pk for p in candidates])
    wanted = {(p.pk, agenda) for p in candidates if p.active for agenda in enabled_agendas(p)}
    existing = {(profile_id, agenda): pk
                for pk, profile_id, agenda in scope.values_list("pk", "profile_id", "agenda")}
    gone = [pk for key, pk in existing.items() if key not in wanted]
    if gone:
        Job.objects.filter(pk__in=gone).delete()
    new = [Job(profile_id=profile_id, agenda=agenda)
           for profile_id, agenda in sorted(wanted - existing.keys())]
    if new:
        # Another dispatcher may create the same rows at the same moment: the unique
        # constraint keeps one, and this one is ignored.
        Job.objects.bulk_create(new, ignore_conflicts=True)


def on_profile_saved(sender: type, instance: SyncProfile, raw: bool = False,
                     **kwargs: Any) -> None:
    """A profile saved in the admin shows its jobs at once, not a minute later."""
    if not raw:
        reconcile_jobs([instance])


# --- timing --------------------------------------------------------------------------------
def backoff(interval_minutes: int, failures: int) -> dt.timedelta:
    """How long after a run the next one starts: the interval, doubled per failure in a row,
    capped at an hour (or at the interval itself, when that is longer)."""
    interval = dt.timedelta(minutes=max(1, interval_minutes))
    if failures <= 0:
        return interval
    cap = max(MAX_BACKOFF, interval)
    # Bounded exponent: 2**failures of a long-failing job would grow without need.
    return min(interval * (2 ** min(failures, 20)), cap)


def beat(name: str = WORKER_HEARTBEAT) -> None:
    """Note that a worker is alive (read by /healthz)."""
    now = timezone.now()
    if not Heartbeat.objects.filter(name=name).update(seen_at=now):
        Heartbeat.objects.get_or_create(name=name, defaults={"seen_at": now})


class _Beats:
    last: float | None = None   # time.monotonic() of this process's last run heartbeat


def beat_now_and_then() -> None:
    """The worker's heartbeat, written by a run at most every RUN_BEAT_EVERY in a process:
    /healthz looks for one within minutes, and every worker writing the one row twice a
    run makes them wait on each other's row lock (10,000 profiles: 35 runs a second)."""
    now = time.monotonic()
    if _Beats.last is not None and now - _Beats.last < RUN_BEAT_EVERY.total_seconds():
        return
    beat()
    _Beats.last = now


# --- enqueueing ----------------------------------------------------------------------------
def enqueue(profile: SyncProfile, agenda: str, *, dry_run: bool = False,
            trigger: str = "schedule", broker: Broker | None = None) -> str:
    """Queue one run of `agenda` for a worker; returns django-q2's task id.

    Only ids travel through the broker (never a model instance or a secret). `broker`: one
    to reuse (django-q2 opens a new one, with its own Redis connection, per task otherwise)."""
    return _enqueue(profile.pk, profile.mailbox, agenda, dry_run=dry_run, trigger=trigger,
                    broker=broker)


def _enqueue(profile_id: int, mailbox: str, agenda: str, *, dry_run: bool = False,
             trigger: str = "schedule", broker: Broker | None = None) -> str:
    kind = "analysis" if dry_run else "sync"
    options: dict[str, Any] = {"broker": broker} if broker is not None else {}
    if trigger == "schedule":
        # The run's history is its Run row. django-q2 storing each scheduled task's success
        # as well costs its one monitor process a transaction over the last `save_limit`
        # stored results per task, 20,000 of them an interval at 10,000 profiles; a task
        # that fails (never: run_job catches everything) is still kept.
        options["save"] = False
    return async_task(RUN_FUNC, profile_id, agenda, dry_run=dry_run, trigger=trigger,
                      group=f"profile:{profile_id}",
                      task_name=f"{kind} {agenda} {mailbox}"[:100], **options)


def dispatch() -> int:
    """Enqueue every due job once; returns how many were enqueued. Called every minute."""
    try:
        beat()
        reconcile_jobs()
        return _dispatch_due(timezone.now())
    except Exception:
        log.exception("The dispatcher failed; it runs again in a minute")
        return 0


def _dispatch_due(now: dt.datetime) -> int:
    """One query for what is due, one claim per CLAIM_CHUNK jobs of the same next run time,
    one broker for every task: claimed one by one, each through a new broker, 2,000 jobs
    took a minute to dispatch on PostgreSQL and Redis (bench/schedule.py; now 3 s)."""
    due = list(
        Job.objects.filter(paused=False, next_run_at__lte=now, profile__active=True)
        # Still waiting in the queue: enqueueing it again would only stack up copies.
        .filter(_not_waiting(now)).order_by("next_run_at")
        .values_list("pk", "profile_id", "agenda", "next_run_at", "enqueued_at",
                     "consecutive_failures", "profile__interval_minutes", "profile__mailbox"))
    # Jobs whose next run moves to the same time are claimed together.
    by_next: dict[dt.datetime, list[DueJob]] = {}
    for pk, profile_id, agenda, next_run_at, enqueued_at, failures, interval, mailbox in due:
        by_next.setdefault(now + backoff(interval, failures), []).append(
            DueJob(pk, profile_id, agenda, mailbox, next_run_at, enqueued_at))
    broker = get_broker()
    enqueued = 0
    for pushed_to, jobs in by_next.items():
        for start in range(0, len(jobs), CLAIM_CHUNK):
            chunk = jobs[start:start + CLAIM_CHUNK]
            claimed = claim_due(chunk, now, pushed_to)
            for job in chunk:
                if job.pk in claimed and _enqueue_claimed(job, pushed_to, broker):
                    enqueued += 1
    return enqueued


class DueJob(NamedTuple):
    pk: int
    profile_id: int
    agenda: str
    mailbox: str
    next_run_at: dt.datetime
    enqueued_at: dt.datetime | None


def _not_waiting(now: dt.datetime) -> Q:
    return Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - LOST_AFTER)


def claim_due(jobs: list[DueJob], now: dt.datetime, pushed_to: dt.datetime) -> set[int]:
    """The claim: of these jobs, those still due, unpaused and not waiting in the queue get
    their next run moved to `pushed_to` and are marked enqueued, in one conditional UPDATE;
    returns their ids. Only the dispatcher whose UPDATE moved a job enqueues it: a second
    dispatcher's finds it no longer due (its next run is then after that dispatcher's now),
    or waiting in the queue."""
    if not jobs:
        return set()
    table = connection.ops.quote_name(Job._meta.db_table)
    marks = ", ".join(["%s"] * len(jobs))
    prepare = Job._meta.get_field("next_run_at").get_db_prep_save
    now_db, pushed_db, lost_db = (prepare(value, connection)
                                  for value in (now, pushed_to, now - LOST_AFTER))
    # UPDATE ... RETURNING (PostgreSQL, SQLite >= 3.35): which rows this statement claimed.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET next_run_at = %s, enqueued_at = %s "
            f"WHERE id IN ({marks}) AND NOT paused AND next_run_at <= %s "
            "AND (enqueued_at IS NULL OR enqueued_at < %s) RETURNING id",
            [pushed_db, now_db, *(job.pk for job in jobs), now_db, lost_db])
        return {row[0] for row in cursor.fetchall()}


def _enqueue_claimed(job: DueJob, pushed_to: dt.datetime, broker: Broker) -> bool:
    try:
        _enqueue(job.profile_id, job.mailbox, job.agenda, trigger="schedule", broker=broker)
    except Exception:
        log.exception("Could not enqueue the %s job of profile %s; trying again at the next "
                      "dispatch", job.agenda, job.profile_id)
        Job.objects.filter(pk=job.pk, next_run_at=pushed_to).update(
            next_run_at=job.next_run_at, enqueued_at=job.enqueued_at)
        return False
    return True


# --- running -------------------------------------------------------------------------------
def run_job(profile_id: int, agenda: str, *, dry_run: bool = False,
            trigger: str = "schedule") -> str | None:
    """The task: one run of one agenda; returns the run's status (django-q2 keeps it, but
    for scheduled runs: see _enqueue)."""
    try:
        return _run_job(profile_id, agenda, dry_run=dry_run, trigger=trigger)
    except Exception:
        log.exception("Running %s of profile %s failed", agenda, profile_id)
        return None


def _run_job(profile_id: int, agenda: str, *, dry_run: bool, trigger: str) -> str | None:
    from engine.sync import sync

    beat_now_and_then()
    # With every agenda's settings: the mailbox's calendar window and the run's rules read
    # them (three statements fewer per run).
    profile = SyncProfile.objects.select_related(
        "connection", "organization", *AGENDA_SETTINGS).filter(pk=profile_id).first()
    if profile is None:
        return None   # deleted since it was enqueued
    job = Job.objects.filter(profile_id=profile_id, agenda=agenda).first()
    if trigger == "schedule":
        if job is None or not profile.active:
            return None   # switched off or deactivated since it was enqueued
        Job.objects.filter(pk=job.pk).update(enqueued_at=None)
    if not profile.active and not dry_run:
        # Whatever queued it: an inactive profile is one not set up yet (a new profile starts
        # inactive) or switched off, and writes nothing. An analysis writes nothing anyway.
        return None
    if agenda not in enabled_agendas(profile):
        return None
    held_lease = False
    try:
        run = sync(profile, agenda, dry_run=dry_run, trigger=trigger)
        held_lease = run.status not in NOT_STARTED
    except Exception as exc:
        # The runner records its own failures; this is what fails before it starts (no
        # backend for the connection, an undecryptable secret...): still history, not a crash.
        log.exception("%s sync of %s could not start", agenda, profile)
        run = Run.objects.create(
            profile=profile, agenda=agenda, trigger=trigger, status=Run.Status.FAILED,
            kind=Run.Kind.ANALYSIS if dry_run else Run.Kind.SYNC, finished=timezone.now(),
            message=str(exc) if isinstance(exc, NotImplementedError)
            else internal_error(exc))
    beat_now_and_then()
    if held_lease:
        close_abandoned_runs(profile_id, agenda)
    if job is not None and not dry_run:
        record_result(job, profile, run)
    return run.status


def close_abandoned_runs(profile_id: int, agenda: str) -> int:
    """Mark as failed the runs of this agenda that a worker dying mid-run left "running".

    Nothing else ever finishes them: the history would show them running forever, and
    /metrics would count them in syncserver_runs_in_progress. Call it only after a run that
    held the agenda's lease: a run still "running" that started more than a lease's lifetime
    ago cannot be alive then, since alive it would have kept its lease (renewed after every
    batch) and that run could not have taken it. (One that only stalled past its lease fails
    at its next renewal and records so itself, over this.) Returns how many runs it closed."""
    now = timezone.now()
    return Run.objects.filter(
        profile_id=profile_id, agenda=agenda, status=Run.Status.RUNNING,
        started__lt=now - leases.lease_ttl()).update(
        status=Run.Status.FAILED, finished=now, message=ABANDONED)


def record_result(job: Job, profile: SyncProfile, run: Run) -> None:
    """Move the job on after a run: its next time, its failure count, its alerts."""
    if run.status in NOT_STARTED:
        return   # another run of this agenda is going on (it records its own), or paused
    now = timezone.now()
    failed = run.status == Run.Status.FAILED
    failures = job.consecutive_failures + 1 if failed else 0
    fields: dict[str, Any] = {
        "last_run": run, "last_run_at": run.finished or now, "last_status": run.status,
        "last_message": run.message, "consecutive_failures": failures,
        "next_run_at": now + backoff(profile.interval_minutes, failures),
    }
    if run.status in (Run.Status.SUCCESS, Run.Status.PARTIAL):
        fields["last_success_at"] = run.finished or now
    if not Job.objects.filter(pk=job.pk).update(**fields):
        return   # the job was deleted meanwhile (agenda switched off)
    for name, value in fields.items():
        setattr(job, name, value)
    alerts.after_run(job, profile, run)


# --- the dispatcher's schedule -------------------------------------------------------------
def ensure_schedule(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """The one django-q2 schedule that runs `dispatch` every minute; idempotent.

    Connected to `post_migrate`, so `manage.py migrate` (and so `make run`) leaves it in place
    on a fresh database. A schedule an administrator edited (e.g. paused) is left as it is."""
    from django_q.models import Schedule

    if Schedule._meta.db_table not in connections[using].introspection.table_names():
        return   # django_q not migrated (yet) in this database
    if Schedule.objects.using(using).filter(func=DISPATCH_FUNC).exists():
        return
    Schedule.objects.using(using).create(
        name=SCHEDULE_NAME, func=DISPATCH_FUNC, schedule_type=Schedule.MINUTES, minutes=1,
        repeats=-1, next_run=timezone.now())
