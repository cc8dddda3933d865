"""Live progress of a running sync, kept on its `Run` row for the dashboard to poll.

A run says what it has done (`report`): records handled, records newly known (when it knows
them), what it is doing now. The counts are kept on the run object the runner holds, so its
final save stores the last values; the row is also updated while the run goes on, at most
once a second per run, so a first sync of thousands of records costs a few dozen small
UPDATEs, not one per record.

No write happens inside a transaction: ARCHITECTURE keeps transactions short (one batch),
and a batch's transaction holds the database's write lock (on SQLite, the whole file's). A
report made inside one is written once that transaction has committed; if it rolls back, the
write is dropped with it and the next report carries the counts.
"""

from __future__ import annotations

import functools
import time
import weakref
from typing import Any

from django.db import transaction

from engine.models import Run

# Seconds between two writes of one run's progress.
INTERVAL = 1.0
NOTE_LENGTH = Run._meta.get_field("progress_note").max_length or 200

# The clock that paces the writes: monotonic, so a change of the system time cannot stop
# them (tests replace it).
clock = time.monotonic

# When each run's progress was last written (or handed to on_commit). Keyed by the run
# object itself and dropped with it: a worker process runs many syncs in its lifetime.
_written_at: weakref.WeakKeyDictionary[Run, float] = weakref.WeakKeyDictionary()


def report(run: Run | None, *, done: int = 0, more: int = 0, note: str | None = None) -> None:
    """`done` more records handled, `more` more records known to be in this run (negative: an
    estimate made up front was too high), and what it is doing now; stored on the run row
    unless that was done less than a second ago.

    `run` is None before a runner has created its run: nothing to report on yet."""
    if run is None:
        return
    run.progress_done += done
    run.progress_total = max(0, run.progress_total + more)
    if note is not None:
        run.progress_note = note[:NOTE_LENGTH]
    if not done and note is None:
        return   # more work known: shown with the next record handled, not a write of its own
    now = clock()
    last = _written_at.get(run)
    if last is not None and now - last < INTERVAL:
        return
    _written_at[run] = now
    write = functools.partial(_store, run.pk, {
        "progress_done": run.progress_done, "progress_total": run.progress_total,
        "progress_note": run.progress_note})
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(write)
    else:
        write()


def _store(run_id: int, values: dict[str, Any]) -> None:
    # Only while it runs: a late write must not touch a run that has finished (its final
    # save stored the final counts).
    Run.objects.filter(pk=run_id, status=Run.Status.RUNNING).update(**values)
