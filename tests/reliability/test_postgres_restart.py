"""Fault campaign: PostgreSQL restarted while a worker runs a sync.

The database is a PostgreSQL server of the test's own (`private_postgres`; the suite's shared
server is never touched), migrated like a new deployment. A worker — a process of its own
running one job as django-q2's workers do — syncs contacts or calendar against it and ewsim;
at a random EWS request of the run, the server is restarted as an administrator would
(`pg_ctl stop -m fast`, then start), cutting every connection. Then:

- the worker does not hang or crash: its run ends, the history says it failed and why (the
  database failed during the run), and the agenda's lease is free again at once (the run's
  end is recorded on a new connection once the server is back);
- the next runs converge: every record made on either side once on each, every edit on both
  (`TwoWayWorld.check`), and the run after has nothing to write.

Default size: RELIABILITY_RESTARTS=2 runs failed by a restart, over 40 records.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connections
from django.db.utils import load_backend

from engine.models import Lease, Run
from ewsim.testing import SimHandle
from tests.engine.sync_helpers import make_profile

from .campaign import REPO, KillPoint, KillSwitch, Worker, count, seeded_random
from .private_postgres import PrivatePostgres, private_postgres
from .world import AGENDAS, TwoWayWorld

pytestmark = pytest.mark.django_db(transaction=True)

RESTARTS = count("RELIABILITY_RESTARTS", 2)
ITEMS = count("RELIABILITY_RESTART_ITEMS", 40)
WRITTEN = ("crm_created", "crm_updated", "crm_deleted", "remote_created", "remote_updated",
           "remote_deleted")


@pytest.fixture
def restartable_database(transactional_db: None, tmp_path: Path) -> Iterator[PrivatePostgres]:
    """A private PostgreSQL server, migrated, which this process's default connection uses
    for the test's duration (the suite's own database is put back before it is flushed)."""
    with private_postgres() as server:
        with psycopg.connect(f"host=127.0.0.1 port={server.port} user=postgres "
                             "dbname=postgres", autocommit=True) as admin:
            admin.execute("CREATE DATABASE reliability")
        env = Worker(server.url, tmp_path).env()
        migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"],
                                  cwd=REPO, env=env, capture_output=True, text=True)
        assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-4000:]
        current = connections["default"]
        backend = load_backend("django.db.backends.postgresql")
        private = backend.DatabaseWrapper({
            **current.settings_dict, "ENGINE": "django.db.backends.postgresql",
            "NAME": "reliability", "USER": "postgres", "PASSWORD": "", "HOST": "127.0.0.1",
            "PORT": str(server.port), "OPTIONS": {}, "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": False}, "default")
        connections["default"] = private
        try:
            yield server
        finally:
            private.close()
            connections["default"] = current


def test_postgresql_restarted_during_a_run_fails_it_clearly_and_the_next_runs_converge(
        ewsim: SimHandle, restartable_database: PrivatePostgres, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = restartable_database
    rng, seed = seeded_random("PostgreSQL restarts")
    profile = make_profile(ewsim)
    world = TwoWayWorld(ewsim, profile, rng)
    world.seed(ITEMS)
    switch = KillSwitch(action=server.restart)
    switch.install(monkeypatch)
    worker = Worker(server.url, tmp_path)
    context = f"(replay with RELIABILITY_SEED={seed})"

    horizon = {agenda: 6 for agenda in AGENDAS}
    history: list[str] = []
    failed = 0
    # Restarted while the run waits on Exchange: the run's next query meets the cut connection.
    # (A run may also have had nothing but its end left to record, which is then retried on a
    # new connection: it succeeds. The campaign goes on until RESTARTS runs were failed.)
    while failed < RESTARTS:
        assert len(history) < 6 * RESTARTS, "restarts keep missing the runs:\n" + "\n".join(
            history)
        agenda = rng.choice(AGENDAS)
        point = KillPoint(rng.randint(1, horizon[agenda]), before=True)
        process = worker.start(profile.pk, agenda)
        with switch.armed(process, point):
            outcome = Worker.finish(process, switch, timeout=300)
        switch.wait_quiet()
        connections["default"].close()   # this process's connection did not survive either
        assert outcome.returncode == 0, outcome.output[-4000:]
        run = Run.objects.filter(profile=profile, agenda=agenda).latest("started")
        history.append(f"{agenda}: restart {point} ({switch.operation or 'not reached'}) → "
                       f"{run.status}: {run.message[:200]}")
        # Finished either way, and the lease free: not left "running" behind a held lease.
        assert run.finished is not None, history[-1]
        assert not Lease.objects.filter(profile=profile, agenda=agenda,
                                        holder__gt="").exists(), history[-1]
        if run.status == Run.Status.FAILED:
            assert switch.fired, history[-1]
            assert run.message.startswith("The database failed during the run"), history[-1]
            failed += 1
        else:
            assert run.status == Run.Status.SUCCESS, history[-1]
            if not switch.fired:
                horizon[agenda] = max(4, switch.seen)
        world.look_up_exchange()
        world.step(rng.randint(0, 4))
    print(f"seed {seed}:", *history, sep="\n")

    replay = f"{context}\n" + "\n".join(history)
    for agenda in AGENDAS:
        outcome = Worker.finish(worker.start(profile.pk, agenda))
        assert outcome.status == Run.Status.SUCCESS, outcome.output[-4000:] + replay
    try:
        world.check()
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{replay}") from None
    for agenda in AGENDAS:
        outcome = Worker.finish(worker.start(profile.pk, agenda))
        assert outcome.status == Run.Status.SUCCESS, outcome.output[-4000:]
        last = Run.objects.filter(profile=profile, agenda=agenda).latest("started")
        assert {name: getattr(last, name) for name in WRITTEN} == dict.fromkeys(WRITTEN, 0), \
            replay
    assert not Run.objects.filter(status=Run.Status.RUNNING).exists(), replay
