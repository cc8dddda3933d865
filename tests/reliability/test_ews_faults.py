"""Fault campaign: Exchange failing at random points of a two-way contacts and calendar sync.

Each round, users change records on both sides, then one job runs (`engine.jobs.run_job`, as a
worker runs it) while ewsim answers one of its requests — drawn at random among the requests
the run makes — with a fault, for one request, a few in a row, or for the rest of the run:
ErrorServerBusy with a back-off, HTTP 500, HTTP 503 and HTTP 429 with Retry-After, a
connection reset, a delay, or ErrorInvalidSyncStateData on a SyncFolderItems. Then:

- the run's history says what happened: the run finished (never left "running"); a run that
  failed says why in its message, in words (no internal error), and its job counts the
  failure; a partial run lists its errors; a run that succeeded had the fault retried (the
  final check proves nothing was skipped);
- after the campaign, with Exchange healthy again, the next runs converge: every record once on
  each side, every edit on both (`TwoWayWorld.check`), and the run after has nothing to write.

Default size: RELIABILITY_FAULTS=10 rounds over 40 records; the full campaign names more
(docs/reliability.md). The throttling budget per run is a few seconds here (production: five
minutes), so a fault lasting the rest of the run fails it quickly.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from engine import jobs
from engine.models import Job, Run, RunItem
from ewsim.testing import SimHandle
from tests.engine.sync_helpers import make_profile

from .campaign import FaultAtRequest, FaultPlan, count, seeded_random
from .world import AGENDAS, TwoWayWorld

pytestmark = pytest.mark.django_db(transaction=True)

FAULTS = count("RELIABILITY_FAULTS", 10)
ITEMS = count("RELIABILITY_FAULT_ITEMS", 40)
# ewsim's fault kinds for what the campaign injects, with their parameters.
KINDS: dict[str, dict[str, object]] = {
    "server_busy": {"back_off_ms": 300},
    "http_500": {},
    "http_503": {"retry_after": 1},
    "http_429": {"retry_after": 1},
    "connection_reset": {},
    "delay": {"delay_ms": 700},
    "invalid_sync_state": {},
}
WRITTEN = ("crm_created", "crm_updated", "crm_deleted", "remote_created", "remote_updated",
           "remote_deleted")


def draw_fault(rng: random.Random, horizon: int) -> FaultPlan:
    kind = rng.choice(sorted(KINDS))
    if kind == "invalid_sync_state":
        # Only a SyncFolderItems can answer it: the first (the run's read) or a later one.
        return FaultPlan(kind, rng.randint(1, 2), operation="SyncFolderItems")
    lasting = rng.choices([1, rng.randint(2, 3), 1000], weights=[6, 3, 1])[0]
    return FaultPlan(kind, rng.randint(1, horizon), lasting, params=dict(KINDS[kind]))


def test_exchange_faults_at_random_points_are_recorded_and_the_next_runs_converge(
        ewsim: SimHandle, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rng, seed = seeded_random("EWS faults")
    settings.MAILBOX_THROTTLE_BUDGET = 3
    profile = make_profile(ewsim)
    world = TwoWayWorld(ewsim, profile, rng)
    world.seed(ITEMS)
    injector = FaultAtRequest()
    monkeypatch.setattr(ewsim.server, "faults", injector)

    horizon = {agenda: 12 for agenda in AGENDAS}
    outcomes: Counter[str] = Counter()
    history: list[str] = []
    for _ in range(FAULTS):
        world.look_up_exchange()
        world.step(rng.randint(0, 4))
        agenda = rng.choice(AGENDAS)
        plan = draw_fault(rng, horizon[agenda])
        injector.arm(plan)
        failures_before = Job.objects.get(profile=profile, agenda=agenda).consecutive_failures
        status = jobs.run_job(profile.pk, agenda, trigger="manual")
        injector.arm(None)
        run = Run.objects.filter(profile=profile, agenda=agenda).latest("started")
        line = f"{agenda}: {plan} (fired {injector.fired}×) → {status}: {run.message[:160]}"
        history.append(line)
        context = f"{line}\n(replay with RELIABILITY_SEED={seed})"
        assert status == run.status and run.finished is not None, context
        if run.status == Run.Status.FAILED:
            assert injector.fired, f"a run failed with no fault: {context}"
            assert run.message and "Internal error" not in run.message, context
            job = Job.objects.get(profile=profile, agenda=agenda)
            assert job.consecutive_failures == failures_before + 1, context
            assert job.last_message == run.message, context
        elif run.status == Run.Status.PARTIAL:
            errors = run.items.filter(action=RunItem.Action.ERROR)
            assert run.errors == errors.count() > 0, context
            assert all(item.detail for item in errors), context
        else:
            assert run.status == Run.Status.SUCCESS, context
            horizon[agenda] = max(2, run.requests)
        outcomes[f"{plan.kind} {'fired' if injector.fired else 'not reached'} → "
                 f"{run.status}"] += 1
    print(f"seed {seed}: {FAULTS} faulted runs:", dict(outcomes))
    print("\n".join(history))

    # Exchange healthy again: the next runs converge and then have nothing left to do.
    replay = f"(replay with RELIABILITY_SEED={seed})\n" + "\n".join(history)
    for agenda in AGENDAS:
        assert jobs.run_job(profile.pk, agenda, trigger="manual") == Run.Status.SUCCESS, replay
    try:
        world.check()
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{replay}") from None
    for agenda in AGENDAS:
        assert jobs.run_job(profile.pk, agenda, trigger="manual") == Run.Status.SUCCESS, replay
        last = Run.objects.filter(profile=profile, agenda=agenda).latest("started")
        assert {name: getattr(last, name) for name in WRITTEN} == dict.fromkeys(WRITTEN, 0), \
            replay
    assert not Run.objects.filter(status=Run.Status.RUNNING).exists()
