"""Quiet runs: syncs a change notification started that found nothing to do.

The listener starts a run for every notification, and most of them find nothing to change
(our own writes come back as notifications; Outlook touches items as it opens them). Shown
like other runs they bury the one that did the work: the dashboard's "last run" said 0/0/0
a minute after a run had pushed 300 contacts. The pages show them as what they are: checks.
"""

from __future__ import annotations

from django.db.models import Q

from engine.models import Run

# The trigger of the runs the listener starts (engine.listen).
NOTIFIED = "change"
# A run with any of these above zero did or found something worth seeing.
COUNTS = ("crm_created", "crm_updated", "crm_deleted", "remote_created", "remote_updated",
          "remote_deleted", "linked", "conflicts", "errors", "duplicates")

QUIET = Q(trigger=NOTIFIED, kind=Run.Kind.SYNC, status=Run.Status.SUCCESS,
          **{name: 0 for name in COUNTS})


def is_quiet(run: Run) -> bool:
    return (run.trigger == NOTIFIED and run.kind == Run.Kind.SYNC
            and run.status == Run.Status.SUCCESS
            and not any(getattr(run, name) for name in COUNTS))
