"""The journal of one run: its Run row, its lease, its progress, its history lines and counters.

Every run, two-way or e-mail import, keeps its journal the same way. A dry run (an analysis)
is a journal in a mode: its history is written as a sync's would be, while what the run would
change is not (the link table a dry run gets keeps no write: engine/run/link_table.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from engine import leases, progress
from engine.crmstore.base import CrmError
from engine.mailbox.base import MailboxError, internal_error
from engine.models import Run, RunItem
from engine.run.bulk_sql import insert_rows
from profiles.models import SyncProfile

log = logging.getLogger(__name__)

# A database restarted or failed over mid-run is back within seconds: the run's end is
# recorded on a new connection, tried this many times a second apart.
RECORD_ATTEMPTS = 30

# The Run counter each kind of history line adds to.
COUNTERS = {
    RunItem.Action.CREATE_CRM: "crm_created", RunItem.Action.UPDATE_CRM: "crm_updated",
    RunItem.Action.DELETE_CRM: "crm_deleted", RunItem.Action.CREATE_REMOTE: "remote_created",
    RunItem.Action.UPDATE_REMOTE: "remote_updated",
    RunItem.Action.DELETE_REMOTE: "remote_deleted", RunItem.Action.LINK: "linked",
    RunItem.Action.CONFLICT: "conflicts", RunItem.Action.SKIP: "skipped",
    RunItem.Action.ERROR: "errors", RunItem.Action.DUPLICATE: "duplicates",
}


class Killed(BaseException):
    """Raised by a test's crash hook: like a worker killed mid-run, nothing below catches it."""


class Journal:
    """What one run of one agenda of one profile leaves on record, and its lease."""

    def __init__(self, profile: SyncProfile, agenda: str, *, dry_run: bool = False,
                 trigger: str = "manual", checkpoint: Callable[[str], None] | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.profile = profile
        self.agenda = agenda
        self.dry_run = dry_run
        self.trigger = trigger
        self._checkpoint = checkpoint
        self._progress = progress
        self.holder = uuid.uuid4().hex
        self._renewed_at = 0.0   # time.monotonic() of the lease's last claim or renewal
        self.run: Run | None = None
        self._approval_used = False
        # While lines are written together (`together`): the lines waiting to be saved.
        self._buffer: list[dict[str, Any]] | None = None

    # --- the run as a whole -------------------------------------------------------------------
    def conduct(self, work: Callable[[], bool], requests_made: Callable[[], int]) -> Run:
        """The run: its row, its lease, `work` (True if it waits for an approval), its end.
        Errors are data: what `work` raises is the run's message, never the worker's."""
        run = Run.objects.create(
            profile=self.profile, agenda=self.agenda, trigger=self.trigger,
            kind=Run.Kind.ANALYSIS if self.dry_run else Run.Kind.SYNC)
        self.run = run
        self._renewed_at = time.monotonic()
        if not leases.claim(self.profile.pk, self.agenda, self.holder):
            run.status = Run.Status.REFUSED
            run.message = (f"Another run of this profile's {self.agenda} agenda is in "
                           "progress.")
            run.finished = timezone.now()
            run.save()
            return run
        try:
            waiting = work()
        except (MailboxError, CrmError) as exc:
            run.status, run.message = Run.Status.FAILED, exc.message
        except (OperationalError, InterfaceError) as exc:
            log.exception("%s sync of %s lost its database", self.agenda, self.profile)
            run.status = Run.Status.FAILED
            run.message = (f"The database failed during the run ({str(exc).strip()}); what "
                           "was recorded before stays, and the next run goes on from there.")
        except Exception as exc:   # errors are data: the worker loop never sees them
            log.exception("%s sync of %s failed", self.agenda, self.profile)
            run.status = Run.Status.FAILED
            run.message = internal_error(exc)
        else:
            if waiting:
                run.status = Run.Status.WAITING
            else:
                run.status = Run.Status.PARTIAL if run.errors else Run.Status.SUCCESS
        self._finish(run, requests_made)
        return run

    def _finish(self, run: Run, requests_made: Callable[[], int]) -> None:
        """Release the lease and record the run's end. A database lost mid-run (restarted,
        failed over) is waited for on a new connection: else the run would stay "running",
        its lease held until it expired, and nothing would say why."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                leases.release(self.profile.pk, self.agenda, self.holder)
                run.requests = requests_made()
                run.finished = timezone.now()
                run.save()
                return
            except (OperationalError, InterfaceError):
                # Inside a transaction a new connection would not be the caller's.
                if attempt == RECORD_ATTEMPTS - 1 or connection.in_atomic_block:
                    raise
                log.warning("The database is unreachable; recording the %s run's end again "
                            "in a second", self.agenda)
                connection.close()
                time.sleep(1)

    def renew(self) -> None:
        """Renew the lease. After every page and batch, but at most ten times per lease
        period: a statement per batch is time a first sync of thousands of items waits on
        (bench/), and a lease renewed a tenth of its period ago can be neither expired nor
        taken."""
        now = time.monotonic()
        if now - self._renewed_at < leases.lease_ttl().total_seconds() / 10:
            return
        if not leases.renew(self.profile.pk, self.agenda, self.holder):
            raise MailboxError("The run lost its lease (it took too long without progress).")
        self._renewed_at = now

    def approved(self) -> bool:
        """Whether an administrator approved a run of this agenda that waits (for mass
        deletions or creations). An approval is used by one run, which carries out all that
        waits; every approval given until then is used with it, so none is left over to let
        a later mass change through unseen (a dry run uses none)."""
        if self._approval_used:
            return True
        approvals = Run.objects.filter(profile=self.profile, agenda=self.agenda,
                                       status=Run.Status.WAITING, approved_at__isnull=False,
                                       approval_used=False)
        if not approvals.exists():
            return False
        if not self.dry_run:
            approvals.update(approval_used=True)
        self._approval_used = True
        return True

    def completed_before(self) -> bool:
        """Whether a sync of this agenda other than this one completed (or waits)."""
        return Run.objects.filter(
            profile=self.profile, agenda=self.agenda, kind=Run.Kind.SYNC,
            status__in=[Run.Status.SUCCESS, Run.Status.PARTIAL, Run.Status.WAITING],
        ).exclude(pk=getattr(self.run, "pk", None)).exists()

    # --- history lines and counters -----------------------------------------------------------
    def line(self, action: str, title: str, crm_key: str = "", remote_id: str = "",
             detail: str = "") -> None:
        """One line of the run's history, counted in the run's counters."""
        run = self._current()
        values = {"run_id": run.pk, "action": str(action), "title": (title or "")[:255],
                  "crm_key": crm_key or "", "remote_id": remote_id or "", "detail": detail}
        counter = COUNTERS.get(action)
        if counter:
            setattr(run, counter, getattr(run, counter) + 1)
        if self._buffer is not None:
            self._buffer.append(values)   # saved with the others, counters too (`together`)
            return
        RunItem.objects.create(**values)
        if counter and not self.dry_run:
            Run.objects.filter(pk=run.pk).update(**{counter: getattr(run, counter)})

    @contextmanager
    def together(self) -> Iterator[None]:
        """The lines written meanwhile are saved at the end, a few statements for the lot
        (a first sync writes thousands); none if what runs inside fails."""
        run = self._current()
        self._buffer = []
        try:
            yield
            lines = self._buffer
        finally:
            self._buffer = None
        insert_rows(RunItem, lines)
        if lines and not self.dry_run:
            Run.objects.filter(pk=run.pk).update(
                **{name: getattr(run, name) for name in set(COUNTERS.values())})

    def _current(self) -> Run:
        if self.run is None:
            raise RuntimeError("The run's journal is written before the run has started.")
        return self.run

    # --- what the run is doing ----------------------------------------------------------------
    def point(self, label: str) -> None:
        """A point where a crash test may kill the run (its hook raises Killed)."""
        if self._checkpoint is not None:
            self._checkpoint(label)

    def say(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def report(self, *, done: int = 0, more: int = 0) -> None:
        """Live progress for the dashboard (engine/progress.py)."""
        progress.report(self.run, done=done, more=more)
