"""Fault campaign: the worker SIGKILLed at random points of a two-way contacts and calendar sync.

The worker is a process of its own running one job as django-q2's workers do
(`engine.jobs.run_job`), against the suite's database and ewsim. At a random EWS request of a
run — before ewsim handles it (the request dies with the worker) or after ewsim answered it
(Exchange did the work, the worker never recorded it) — the kill switch SIGKILLs it. Between
runs, and while each run goes on (unless RELIABILITY_EDITS_DURING_RUNS=0), users create and
edit records on both sides. When
RELIABILITY_KILLS kills have landed, runs go on without kills until each agenda's run
succeeds, and then:

- both sides converge: every record made on either side exists once on each, one link per
  pair, no token, identity stamp or origin twice (`TwoWayWorld.check`);
- every edit made on either side is on both;
- the run after that has nothing to write;
- the history tells every killed run: none is left "running"; each was closed as abandoned by
  the run that took over after its lease expired (SYNC_LEASE_SECONDS, short here).

Default size: RELIABILITY_ITEMS=60 records (half contacts, half events, half of each made on
each side), RELIABILITY_KILLS=3. The full campaign is RELIABILITY_ITEMS=2000
RELIABILITY_KILLS=50 (docs/reliability.md).
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from django.utils import timezone

from engine import jobs
from engine.models import Lease, Run
from ewsim.testing import SimHandle
from tests.engine.sync_helpers import make_profile

from .campaign import KillPoint, KillSwitch, Outcome, Worker, count, seeded_random
from .world import AGENDAS, TwoWayWorld

pytestmark = pytest.mark.django_db(transaction=True)

KILLS = count("RELIABILITY_KILLS", 3)
ITEMS = count("RELIABILITY_ITEMS", 60)
# A killed run's lease must expire before the next run can start: short, but long enough that
# a live run on a loaded machine renews it (after every page and batch) in time.
LEASE_SECONDS = 5
# Edits made while a run goes on, not only between runs (RELIABILITY_EDITS_DURING_RUNS=0
# leaves them out, to tell a failure's cause apart).
EDITS_DURING_RUNS = os.environ.get("RELIABILITY_EDITS_DURING_RUNS", "1") != "0"
WRITTEN = ("crm_created", "crm_updated", "crm_deleted", "remote_created", "remote_updated",
           "remote_deleted")


def wait_for_lease(profile_id: int, agenda: str) -> None:
    """Until no run holds the agenda's lease (a killed run's lease expires on its own)."""
    deadline = time.monotonic() + LEASE_SECONDS + 30
    while Lease.objects.filter(profile_id=profile_id, agenda=agenda, holder__gt="",
                               expires_at__gte=timezone.now()).exists():
        assert time.monotonic() < deadline, "a lease outlived its expiry"
        time.sleep(0.2)


def run_worker(worker: Worker, switch: KillSwitch, profile_id: int, agenda: str,
               point: KillPoint | None, meanwhile: Callable[[subprocess.Popen[bytes]], None]
               = lambda process: None) -> Outcome:
    """One run in a worker process, killed at `point`; `meanwhile` runs while it does."""
    wait_for_lease(profile_id, agenda)
    process = worker.start(profile_id, agenda)
    with switch.armed(process, point):
        meanwhile(process)
        outcome = Worker.finish(process, switch)
    switch.wait_quiet()
    if not outcome.killed:
        assert outcome.returncode == 0, outcome.output[-4000:]
    return outcome


def test_a_worker_killed_at_random_points_of_a_two_way_sync_loses_and_duplicates_nothing(
        ewsim: SimHandle, shared_database: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng, seed = seeded_random("worker kills")
    profile = make_profile(ewsim)
    world = TwoWayWorld(ewsim, profile, rng)
    world.seed(ITEMS)
    switch = KillSwitch()
    switch.install(monkeypatch)
    worker = Worker(shared_database, tmp_path, {"SYNC_LEASE_SECONDS": str(LEASE_SECONDS)})

    # Kill points are drawn among the requests a run makes: at first as many as a first
    # sync of the agenda's records may make, then as many as the agenda's last whole run made.
    horizon = {agenda: 10 + 6 * math.ceil(ITEMS / 4 / 100) for agenda in AGENDAS}
    kills: list[tuple[str, KillPoint, str]] = []
    finished: Counter[str] = Counter()
    changes_per_step = max(2, ITEMS // 40)

    def users_at_work(process: subprocess.Popen[bytes]) -> None:
        """Changes while the worker runs, at random moments until it ends."""
        def pause() -> None:
            if process.poll() is None:
                time.sleep(rng.uniform(0, 0.4))

        if EDITS_DURING_RUNS:
            world.step(rng.randint(0, changes_per_step), pause)

    while len(kills) < KILLS:
        agenda = rng.choice(AGENDAS)
        point = KillPoint(rng.randint(1, horizon[agenda]), before=rng.random() < 0.5)
        world.look_up_exchange()
        outcome = run_worker(worker, switch, profile.pk, agenda, point, users_at_work)
        if outcome.killed:
            kills.append((agenda, point, switch.operation))
        else:
            finished[outcome.status] += 1
            horizon[agenda] = max(4, switch.seen)
        world.step(rng.randint(0, changes_per_step))   # and between runs
    print(f"seed {seed}: {len(kills)} kills, {sum(finished.values())} runs not killed "
          f"{dict(finished)}; changes {dict(world.changes)}")
    print("kill points:", Counter(f"{a} {'before' if p.before else 'after'} {op}"
                                  for a, p, op in kills))

    # Recovery: runs without kills until each agenda's run succeeds.
    for agenda in AGENDAS:
        for _ in range(4):
            outcome = run_worker(worker, switch, profile.pk, agenda, None)
            if outcome.status == Run.Status.SUCCESS:
                break
        assert outcome.status == Run.Status.SUCCESS, (seed, agenda, outcome.output[-4000:])
    context = f"(replay with RELIABILITY_SEED={seed}; kills {kills})"
    try:
        world.check()
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{context}") from None

    # Converged means nothing is left to write.
    for agenda in AGENDAS:
        outcome = run_worker(worker, switch, profile.pk, agenda, None)
        assert outcome.status == Run.Status.SUCCESS, outcome.output[-4000:]
        last = Run.objects.filter(profile=profile, agenda=agenda).latest("started")
        assert {name: getattr(last, name) for name in WRITTEN} == dict.fromkeys(WRITTEN, 0), \
            context

    # The history: every killed run closed as abandoned by the run that took over.
    assert not Run.objects.filter(status=Run.Status.RUNNING).exists(), context
    abandoned = Run.objects.filter(status=Run.Status.FAILED, message=jobs.ABANDONED)
    assert abandoned.count() == len(kills), context
    assert not Run.objects.filter(status=Run.Status.FAILED).exclude(
        message=jobs.ABANDONED).exists(), context
