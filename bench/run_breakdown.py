"""Where the time of one scheduled run goes: `breakdown(profile_id, agendas)`.

Runs the worker's own task (`engine.jobs.run_job`) in this process, with a timer around each
part of a run (the parts below), and counts the SQL statements each part makes. Timers are
exclusive: a part called inside another counts only in the inner one, so the parts add up to
the whole. What no timer covers is `other` (the run's remaining steps and the task's own
reads of its profile and job).

Used by bench/schedule.py on a profile whose agendas have nothing to do (the steady state), to
say what a no-change run costs and where, in seconds and in queries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

# (part, "module:attribute" or "module:Class.method"): what each timer wraps.
PARTS: list[tuple[str, str]] = [
    ("lease claim/renew/release", "engine.leases:claim"),
    ("lease claim/renew/release", "engine.leases:renew"),
    ("lease claim/renew/release", "engine.leases:release"),
    ("pause check, CRM binding", "engine.pausing:is_paused"),
    ("pause check, CRM binding", "engine.crm_switch:bind"),
    ("pause check, CRM binding", "engine.crmstore.registry:connection_of"),
    ("pause check, CRM binding", "engine.crmstore.registry:reached_by"),
    ("settings and rules load", "engine.agendas.base:AgendaRules.__init__"),
    ("mailbox connection set-up", "engine.mailbox.ews_connection:EwsConnection.account"),
    ("EWS sync-state read (SyncFolderItems) + checkpoint",
     "engine.run.flow:TwoWaySync._read_remote"),
    ("calendar window check", "engine.agendas.calendar:CalendarRules.window_entries"),
    ("CRM change read", "engine.crmstore.builtin:BuiltinCrm.current_cursor"),
    ("CRM change read", "engine.crmstore.builtin:BuiltinCrm.changes_since"),
    ("run steps (folder state, first-run check, retries, decisions, parked items, "
     "deletions)", "engine.run.flow:TwoWaySync._sync"),
    ("run record (start, end, progress)", "engine.run.journal:Journal.conduct"),
    ("run record (start, end, progress)", "engine.progress:report"),
    ("job bookkeeping (heartbeat, result, alerts)", "engine.jobs:beat"),
    ("job bookkeeping (heartbeat, result, alerts)", "engine.jobs:record_result"),
    ("job bookkeeping (heartbeat, result, alerts)", "engine.jobs:close_abandoned_runs"),
]
OTHER = "other"


class _Meter:
    """Exclusive seconds and SQL statements per part."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.queries: dict[str, int] = {}
        self._stack: list[list[Any]] = []   # [part, started, time of inner parts]

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        entry = [name, time.perf_counter(), 0.0]
        self._stack.append(entry)
        try:
            yield
        finally:
            self._stack.pop()
            spent = time.perf_counter() - entry[1]
            self.seconds[name] = self.seconds.get(name, 0.0) + spent - entry[2]
            if self._stack:
                self._stack[-1][2] += spent

    def count_query(self, execute: Callable[..., Any], sql: str, params: Any, many: bool,
                    context: dict[str, Any]) -> Any:
        name = self._stack[-1][0] if self._stack else OTHER
        self.queries[name] = self.queries.get(name, 0) + 1
        return execute(sql, params, many, context)


def _wrap(meter: _Meter, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        with meter.part(name):
            return function(*args, **kwargs)
    return timed


@contextmanager
def _patched(meter: _Meter) -> Iterator[None]:
    from importlib import import_module

    undo: list[tuple[Any, str, Any]] = []
    for name, target in PARTS:
        module_name, _, path = target.partition(":")
        owner: Any = import_module(module_name)
        *outer, attribute = path.split(".")
        for step in outer:
            owner = getattr(owner, step)
        original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(
            owner, attribute)
        if isinstance(original, property):
            replacement: Any = property(_wrap(meter, name, original.fget))
        else:
            replacement = _wrap(meter, name, original)
        setattr(owner, attribute, replacement)
        undo.append((owner, attribute, original))
    try:
        yield
    finally:
        for owner, attribute, original in reversed(undo):
            setattr(owner, attribute, original)


def breakdown(profile_id: int, agendas: list[str]) -> dict[str, Any]:
    """One scheduled run of each agenda of a profile, timed by part: per part the seconds
    (summed over the agendas) and SQL statements, the whole, and the statements per run."""
    from django.db import connection

    from engine.jobs import run_job

    meter = _Meter()
    started = time.perf_counter()
    statuses = []
    with ExitStack() as stack:
        stack.enter_context(_patched(meter))
        stack.enter_context(connection.execute_wrapper(meter.count_query))
        with meter.part(OTHER):
            for agenda in agendas:
                statuses.append(run_job(profile_id, agenda, trigger="schedule"))
    total = time.perf_counter() - started
    runs = len(agendas)
    parts = sorted(meter.seconds, key=lambda n: -meter.seconds[n])
    return {
        "runs": runs, "statuses": statuses,
        "seconds_per_run": round(total / runs, 4),
        "db_queries_per_run": round(sum(meter.queries.values()) / runs, 1),
        "parts": {name: {"ms_per_run": round(1000 * meter.seconds[name] / runs, 2),
                         "queries_per_run": round(meter.queries.get(name, 0) / runs, 1)}
                  for name in parts},
    }
