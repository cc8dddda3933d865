"""Scale (issue #8, item 6): django-q2 clusters in processes of their own, sharing one database.

The lease (engine/leases.py) exists for what a single process cannot show: two clusters
handed the same task at once (django-q2 delivers at least once), and a worker that dies
holding a lease. So these tests run everything for real:

- django-q2's `qcluster` command in child processes of their own (its sentinel, pusher,
  monitor and forked workers), started through a short bootstrap (`CHILD`) that only adds the
  lease journal below;
- the database the suite runs on. On PostgreSQL that is pytest-django's test database, which
  the children reach through DATABASE_URL (hence `transaction=True`: they only see committed
  rows). On SQLite the test database lives in this process's memory, invisible to others, so
  the test works on a file copy of it instead (`shared_database`): SQLite with two clusters
  is a weaker check than PostgreSQL, but the same code paths run;
- Redis at 127.0.0.1:6379 for the Redis broker, under a queue name of its own per test;
- ewsim, in this process on loopback, as the Exchange server every child talks to.

One observer, not a stand-in: the children wrap `engine.leases.claim` and `release` to append
"won the lease at t" / "releasing at t" lines to a journal file; the real functions still do
the work. The Run table alone cannot prove that runs took turns: a run's row is stamped
`started` before its lease claim and `finished` after its release, and under load a run that
waited its turn correctly was seen to start (row created) a second before the previous one
finished. So the journal proves exactly that no two holds of one (profile, agenda) overlapped,
and the Run table is checked against it: every run that was not refused holds one of those
holds inside its started–finished span.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.utils import timezone
from django_q.models import OrmQ, Task

from crm.models import CrmUser, Event, Person
from engine import jobs
from engine.mailbox.ews import EwsMailbox
from engine.models import Agenda, Job, Lease, Link, Run
from engine.records import ContactRecord, EventRecord, Kind, Record
from ewsim.testing import SimHandle
from profiles.models import MailboxConnection, Organization, SyncProfile

from .conftest import access_to
from .sync_helpers import SERVICE, SERVICE_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("SCALE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")
AGENDAS = (Agenda.CONTACTS, Agenda.CALENDAR)
FINISHED = (Run.Status.SUCCESS, Run.Status.PARTIAL, Run.Status.FAILED, Run.Status.WAITING,
            Run.Status.REFUSED)

# What each child process runs: Django set up from the environment, the lease journal, then
# either a django-q2 cluster or a one-off enqueue (the dispatcher plus extra copies).
CHILD = r"""
import json, os, sys, time

import django

django.setup()

from exchangelib.protocol import BaseProtocol

from engine import leases

# As tests/engine/conftest.py does for the test process: a transient error costs 0.2 s, not
# exchangelib's 10 s first back-off.
BaseProtocol.RETRY_WAIT = 0.2

JOURNAL = os.environ["SCALE_JOURNAL"]


def note(**entry):
    line = (json.dumps({**entry, "pid": os.getpid()}) + "\n").encode()
    fd = os.open(JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


real_claim, real_release = leases.claim, leases.release


def claim(profile_id, agenda, holder, *args, **kwargs):
    won = real_claim(profile_id, agenda, holder, *args, **kwargs)
    if won:   # noted after the claim committed: never earlier than the real hold
        note(event="claim", profile=profile_id, agenda=str(agenda), holder=holder,
             at=time.time())
    return won


def release(profile_id, agenda, holder):
    # noted before the release: never later than the real end of the hold
    note(event="release", profile=profile_id, agenda=str(agenda), holder=holder,
         at=time.time())
    real_release(profile_id, agenda, holder)


leases.claim, leases.release = claim, release

if sys.argv[1] == "qcluster":
    from django.core.management import call_command

    call_command("qcluster")
elif sys.argv[1] == "enqueue":
    from engine import jobs
    from profiles.models import SyncProfile

    plan = json.loads(sys.argv[2])
    dispatched = jobs.dispatch()
    for profile_id, agenda in plan["copies"]:
        jobs.enqueue(SyncProfile.objects.get(pk=profile_id), agenda)
    print(json.dumps({"dispatched": dispatched}))
"""


# --- the shared database ---------------------------------------------------------------------
def database_url(settings_dict: dict[str, Any]) -> str:
    """DATABASE_URL for a child process reaching the database `settings_dict` describes."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture
def shared_database(transactional_db: None, tmp_path: Path) -> Iterator[str]:
    """A DATABASE_URL the children share with this process.

    PostgreSQL: the test database itself. SQLite: pytest-django's in-memory database cannot
    be opened by another process, so it is copied (schema and all) into a file, and this
    process's default connection points at the file for the test's duration. The in-memory
    database is put back before pytest-django flushes it."""
    current = connections["default"]
    if current.vendor == "postgresql":
        yield database_url(current.settings_dict)
        return
    if current.vendor != "sqlite":
        pytest.skip(f"the scale tests know PostgreSQL and SQLite, not {current.vendor}")
    path = tmp_path / "shared.sqlite3"
    current.ensure_connection()
    with contextlib.closing(sqlite3.connect(path)) as copy:
        current.connection.backup(copy)
    shared = type(current)({**current.settings_dict, "NAME": str(path)}, "default")
    connections["default"] = shared
    try:
        yield f"sqlite:///{path}"
    finally:
        shared.close()
        connections["default"] = current


# --- the children ----------------------------------------------------------------------------
@dataclass
class Child:
    """One child process (a process group of its own), its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}\n"
                                 + self.tail())

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        # One SIGTERM only (django-q2 can hang on a second one while it stops); then, if it
        # does not stop, SIGKILL to its own process group: only processes this test started.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


class Children:
    """Starts children with one environment (database, broker, queue name, journal) and
    stops every one of them at the end of the test, whatever happened."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.journal = Path(env["SCALE_JOURNAL"])
        self.started: list[Child] = []

    def _popen(self, name: str, args: list[str], extra: dict[str, str]) -> Child:
        log = self.tmp_path / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", CHILD, *args], cwd=REPO, stdout=out,
                stderr=subprocess.STDOUT, env={**self.env, **extra}, process_group=0)
        child = Child(name, process, log)
        self.started.append(child)
        return child

    def cluster(self, name: str, **extra: str) -> Child:
        return self._popen(name, ["qcluster"], extra)

    def wait_running(self, *clusters: Child) -> None:
        """Until each cluster says it runs (its workers forked, its pusher reading the queue):
        work enqueued afterwards is open to all of them from the start."""
        wait_until("the clusters to start", lambda: all(
            "Q Cluster" in (text := c.log.read_text(errors="replace")) and " running." in text
            for c in clusters), self)

    def enqueue(self, copies: list[tuple[int, str]]) -> int:
        """Run the dispatcher once, then enqueue `copies` as extra deliveries, from a process
        of its own (so the Redis broker case enqueues into Redis under the test's queue name).
        Returns how many jobs the dispatcher enqueued."""
        child = self._popen("enqueue", ["enqueue", json.dumps({"copies": copies})], {})
        assert child.process.wait(timeout=60) == 0, child.tail()
        (answer,) = [line for line in child.log.read_text().splitlines()
                     if line.startswith('{"dispatched"')]
        return int(json.loads(answer)["dispatched"])

    def tails(self) -> str:
        return "\n".join(child.tail() for child in self.started)

    def stop(self) -> None:
        for child in self.started:
            child.stop()


@pytest.fixture
def children(shared_database: str, tmp_path: Path) -> Iterator[Callable[..., Children]]:
    """Make the children's environment; stop them all before the database is flushed."""
    made: list[Children] = []

    def make(*, redis: str = "", **extra: str) -> Children:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
               "DATABASE_URL": shared_database, "PYTHONPATH": str(REPO),
               "SCALE_JOURNAL": str(tmp_path / "leases.jsonl"), "LOG_LEVEL": "INFO", **extra}
        env.pop("REDIS_URL", None)
        if redis:
            env["REDIS_URL"] = redis
        group = Children(tmp_path, env)
        made.append(group)
        return group

    yield make
    for group in made:
        group.stop()


def wait_until(what: str, condition: Callable[[], bool], group: Children,
               limit: float = 40.0) -> None:
    """Poll `condition` until it holds; fail with the children's logs after `limit` s."""
    deadline = time.monotonic() + limit
    while not condition():
        for child in group.started:
            if child.name != "enqueue":
                child.check_alive()
        if time.monotonic() > deadline:
            runs = sorted(Run.objects.values_list("profile_id", "agenda", "status", "message"))
            raise AssertionError(f"gave up waiting for {what} after {limit:.0f} s\n"
                                 f"runs: {runs}\n" + group.tails())
        time.sleep(0.2)


# --- profiles and their data -----------------------------------------------------------------
CONTACT_XML = (
    "<t:Contact><t:DisplayName>{given} {surname}</t:DisplayName><t:GivenName>{given}"
    "</t:GivenName><t:EmailAddresses><t:Entry Key=\"EmailAddress1\">{email}</t:Entry>"
    "</t:EmailAddresses><t:Surname>{surname}</t:Surname></t:Contact>")


def event_xml(subject: str, start: dt.datetime) -> str:
    def utc(value: dt.datetime) -> str:
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return (f"<t:CalendarItem><t:Subject>{subject}</t:Subject>"
            f"<t:Start>{utc(start)}</t:Start><t:End>{utc(start + dt.timedelta(hours=1))}"
            "</t:End><t:StartTimeZone Id=\"Central Europe Standard Time\"/>"
            "<t:EndTimeZone Id=\"Central Europe Standard Time\"/></t:CalendarItem>")


def in_days(days: int) -> dt.datetime:
    """10:00 in Prague `days` from today: inside every run's calendar window (the children
    compute it from the real date, as a deployment does)."""
    today = timezone.now().astimezone(PRAGUE).date()
    return dt.datetime.combine(today + dt.timedelta(days=days), dt.time(10), PRAGUE)


def seeded_profile(sim: SimHandle, n: int, *, contacts: int = 3, events: int = 2) -> SyncProfile:
    """Profile `n`: an organization and mailbox of its own (so its CRM data and Exchange data
    are its own), with `contacts` contacts and `events` events on each side, all different.
    Every profile reaches its mailbox through the one service account, by impersonation."""
    if n == 0:
        sim.control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
    mailbox = f"user{n}@example.com"
    sim.control.add_user(mailbox, f"secret-{n}")
    organization = Organization.objects.create(name=f"Org {n}")
    connection = MailboxConnection(organization=organization, name="ewsim", ews_url=sim.url,
                                   auth_type="basic", username=SERVICE)
    connection.set_secret(SERVICE_PASSWORD)
    connection.save()
    crm_user = CrmUser.objects.create(organization=organization, name=f"User {n}",
                                      login=f"user{n}")
    profile = SyncProfile.objects.create(
        organization=organization, user=User.objects.create_user(f"user{n}"), mailbox=mailbox,
        crm_user=crm_user, connection=connection)
    for i in range(contacts):
        sim.control.create_item(mailbox, folder="contacts", tag="Contact", xml=CONTACT_XML.format(
            given=f"Ex{i}", surname=f"P{n}", email=f"ex{i}.p{n}@example.org"))
        Person.objects.create(organization=organization, owner=crm_user, first_name=f"Crm{i}",
                              last_name=f"P{n}", email1=f"crm{i}.p{n}@example.org")
    for i in range(events):
        sim.control.create_item(mailbox, folder="calendar", tag="CalendarItem",
                                xml=event_xml(f"Exchange meeting {i} of {n}", in_days(1 + i)))
        start = in_days(3 + i)
        Event.objects.create(organization=organization, owner=crm_user,
                             subject=f"CRM meeting {i} of {n}", start=start,
                             end=start + dt.timedelta(hours=1), time_zone="Europe/Prague")
    return profile


def exchange_records(sim: SimHandle, mailbox: str, kind: Kind) -> list[Record]:
    """Every contact or event in the mailbox's default folder, read afresh from ewsim."""
    access = access_to(sim, username=SERVICE, secret=SERVICE_PASSWORD, impersonate=True,
                       mailbox=mailbox)
    folder_id = "contacts" if kind == Kind.CONTACTS else "calendar"
    wanted = ContactRecord if kind == Kind.CONTACTS else EventRecord
    with EwsMailbox(access) as backend:
        folder = backend.get_folder(folder_id, kind)
        return [change.record for page in backend.read_changes(folder, None)
                for change in page.changes if isinstance(change.record, wanted)]


def assert_converged(sim: SimHandle, profile: SyncProfile, contacts: int, events: int) -> None:
    """Both sides hold every record once, and each pair is linked once."""
    in_exchange = [r.email1 for r in exchange_records(sim, profile.mailbox, Kind.CONTACTS)]
    in_crm = list(Person.objects.filter(organization=profile.organization)
                  .values_list("email1", flat=True))
    assert sorted(in_exchange) == sorted(set(in_exchange)) and len(in_exchange) == contacts, \
        f"{profile}: Exchange contacts {sorted(in_exchange)}"
    assert sorted(in_crm) == sorted(in_exchange), f"{profile}: CRM persons {sorted(in_crm)}"
    assert Link.objects.filter(profile=profile, agenda=Agenda.CONTACTS,
                               state=Link.State.ACTIVE).count() == contacts
    if events:
        subjects = [r.subject for r in exchange_records(sim, profile.mailbox, Kind.CALENDAR)]
        crm_subjects = list(Event.objects.filter(owner=profile.crm_user)
                            .values_list("subject", flat=True))
        assert sorted(subjects) == sorted(set(subjects)) and len(subjects) == events, \
            f"{profile}: Exchange events {sorted(subjects)}"
        assert sorted(crm_subjects) == sorted(subjects), f"{profile}: CRM events {crm_subjects}"
        assert Link.objects.filter(profile=profile, agenda=Agenda.CALENDAR,
                                   state=Link.State.ACTIVE).count() == events


# --- the lease journal -----------------------------------------------------------------------
def read_journal(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def lease_holds(path: Path) -> dict[tuple[int, str], list[tuple[float, float]]]:
    """Per (profile, agenda), the intervals some run held the lease (as the journal saw them:
    each inside the real hold), sorted. Every claim must have been released."""
    entries = read_journal(path)
    released = {e["holder"]: e["at"] for e in entries if e["event"] == "release"}
    holds: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
    for entry in entries:
        if entry["event"] == "claim":
            assert entry["holder"] in released, f"a lease never released: {entry}"
            holds[(entry["profile"], entry["agenda"])].append(
                (entry["at"], released[entry["holder"]]))
    return {key: sorted(intervals) for key, intervals in holds.items()}


def overlapping(intervals: list[tuple[float, float]]) -> list[tuple[Any, Any]]:
    """Pairs of intervals (sorted by start) of which the later starts before the earlier one
    ended."""
    found = []
    latest: tuple[float, float] | None = None
    for interval in intervals:
        if latest is not None and interval[0] < latest[1]:
            found.append((latest, interval))
        if latest is None or interval[1] > latest[1]:
            latest = interval
    return found


def runs_hold_their_leases(runs: list[Run], holds: list[tuple[float, float]]) -> bool:
    """Whether each run can be given a lease hold of its own that lies inside its started–
    finished span (a run's row is created before its claim and finished after its release):
    the Run table agrees with the journal, one hold per run that was not refused."""
    spans = [(run.started.timestamp(), run.finished.timestamp()) for run in runs
             if run.finished is not None]
    if not len(spans) == len(runs) == len(holds):
        return False
    return any(all(start <= hold[0] and hold[1] <= end
                   for (start, end), hold in zip(spans, order, strict=True))
               for order in itertools.permutations(holds))


# --- two clusters, one database -------------------------------------------------------------
def redis_or_skip() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"the Redis broker case needs a Redis server at {REDIS_URL} "
                    f"(SCALE_TEST_REDIS_URL names another): {exc}")
    return REDIS_URL


@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_scale_two_clusters_never_run_one_agenda_twice_at_once_nor_skip_one(
        broker: str, ewsim: SimHandle, children: Callable[..., Children]) -> None:
    """6 profiles × contacts and calendar, every job delivered three times (the dispatcher
    once, then two adjacent copies, as at-least-once redelivery would), consumed by two
    clusters of two workers each: each delivery either runs or is refused by the lease, runs
    of one (profile, agenda) never overlap, each one succeeds at least once, and both sides
    end up with every record exactly once."""
    redis_url = redis_or_skip() if broker == "redis" else ""
    queue = f"scale_{uuid.uuid4().hex[:12]}"
    profiles = [seeded_profile(ewsim, n) for n in range(6)]
    keys = {(p.pk, str(agenda)) for p in profiles for agenda in AGENDAS}
    assert Job.objects.count() == len(keys) == 12
    # Every Exchange read takes a while, so the copies of one job really meet in time.
    ewsim.control.fault("delay", "SyncFolderItems", count=-1, delay_ms=600)

    group = children(redis=redis_url, Q_NAME=queue, Q_WORKERS="2")
    try:
        clusters = [group.cluster("cluster-a"), group.cluster("cluster-b")]
        group.wait_running(*clusters)
        copies = [key for key in sorted(keys) for _ in range(2)]
        assert group.enqueue(copies) == len(keys)
        deliveries = len(keys) + len(copies)

        # (The dispatcher's own schedule may fire in a cluster meanwhile: harmless, as every
        # job was just pushed 10 minutes out, and not counted here.)
        tasks = Task.objects.filter(func=jobs.RUN_FUNC)

        def queue_empty() -> bool:
            if broker == "orm":
                return not OrmQ.objects.filter(key=queue).exists()
            import redis

            return redis.Redis.from_url(redis_url).llen(f"django_q:{queue}:q") == 0

        def all_done() -> bool:
            return (Run.objects.filter(status__in=FINISHED).count() >= deliveries
                    and queue_empty())

        wait_until(f"{deliveries} runs", all_done, group, limit=50)
        for cluster in clusters:
            cluster.check_alive()
        ewsim.control.clear_faults()

        # None raised into the worker: django-q2 keeps a failed task even where it leaves
        # a scheduled task's success to the run's history (engine.jobs._enqueue). That
        # every delivery ran to its end is the Run row each one left (below).
        assert not tasks.filter(success=False).exists(), group.tails()

        runs: dict[tuple[int, str], list[Run]] = defaultdict(list)
        for run in Run.objects.order_by("started"):
            runs[(run.profile_id, run.agenda)].append(run)
        assert set(runs) == keys
        refused = 0
        for key, of_key in runs.items():
            statuses = [run.status for run in of_key]
            # One Run row per delivery: the task ran (or was refused), never vanished.
            assert len(of_key) == 3, (key, statuses)
            assert set(statuses) <= {Run.Status.SUCCESS, Run.Status.REFUSED}, \
                (key, [(run.status, run.message) for run in of_key])
            assert Run.Status.SUCCESS in statuses, (key, statuses)   # none skipped
            refused += statuses.count(Run.Status.REFUSED)
        # The copies did meet: the lease turned some away (else this proved little).
        assert refused >= 1

        # No two lease holds of one (profile, agenda) overlapped, and each run that was not
        # refused had one of them, inside its own started–finished span.
        holds = lease_holds(group.journal)
        assert set(holds) == keys
        for key, intervals in holds.items():
            assert not overlapping(intervals), (key, intervals)
            ran = [run for run in runs[key] if run.status != Run.Status.REFUSED]
            assert runs_hold_their_leases(ran, intervals), (
                key, [(run.started.timestamp(), run.finished) for run in ran], intervals)
        # Both clusters took part (their forked workers held leases).
        pids = {entry["pid"] for entry in read_journal(group.journal)}
        for cluster in clusters:
            assert pids & descendants(cluster.pid), f"{cluster.name} ran nothing"

        for job in Job.objects.all():
            assert (job.last_status, job.consecutive_failures) == (Run.Status.SUCCESS, 0), job
        assert not Lease.objects.exclude(holder="").exists()
        for profile in profiles:
            assert_converged(ewsim, profile, contacts=6, events=4)
    finally:
        group.stop()
        if redis_url:
            import redis

            connection = redis.Redis.from_url(redis_url)
            for key in connection.scan_iter(match=f"django_q:{queue}:*"):
                connection.delete(key)


# --- a worker killed mid-run ----------------------------------------------------------------
def descendants(pid: int) -> set[int]:
    """The process and every process below it (django-q2 forks the sentinel, pusher, monitor
    and workers, and forks a new worker when one dies)."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        with contextlib.suppress(OSError):
            for thread in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (thread / "children").read_text().split()]
    return found


def test_scale_a_worker_killed_mid_run_is_recovered_after_its_lease_expires(
        ewsim: SimHandle, children: Callable[..., Children]) -> None:
    """A worker is SIGKILLed while its run waits on Exchange creating contacts: its lease
    stays held (a redelivery meanwhile is refused), then expires on its own; the next run
    finishes the work, and what the dead run had already created in Exchange is linked by its
    identity stamp, not created again."""
    profile = seeded_profile(ewsim, 0, contacts=4, events=0)
    # Short enough to wait out in a test, long enough that a loaded machine still redelivers
    # (and refuses) before the dead worker's lease expires.
    lease_seconds = 15
    # The run's one CreateItem (the 4 CRM persons going to Exchange) hangs for a while.
    ewsim.control.fault("delay", "CreateItem", count=1, delay_ms=2500)
    # The broker and queue this process's settings name: it enqueues directly, as the web
    # process's "sync now" does.
    group = children(redis=settings.Q_CLUSTER.get("redis", ""), Q_NAME=settings.Q_CLUSTER["name"],
                     Q_WORKERS="1", SYNC_LEASE_SECONDS=str(lease_seconds))
    cluster = group.cluster("cluster")
    group.wait_running(cluster)
    key = (profile.pk, str(Agenda.CONTACTS))
    jobs.enqueue(profile, Agenda.CONTACTS)

    def claimed() -> list[dict[str, Any]]:
        return [e for e in read_journal(group.journal)
                if e["event"] == "claim" and (e["profile"], e["agenda"]) == key]

    def mid_create() -> bool:
        return bool(claimed()) and not ewsim.control.call("GET", "faults")

    wait_until("the run to reach its CreateItem", mid_create, group)
    (first,) = claimed()
    assert first["pid"] in descendants(cluster.pid) - {cluster.pid}   # a worker of ours
    os.kill(first["pid"], signal.SIGKILL)
    killed_at = timezone.now()

    # Dead mid-run: the run never finished and the lease is still the dead worker's.
    (dead_run,) = Run.objects.filter(profile=profile, agenda=Agenda.CONTACTS)
    assert dead_run.status == Run.Status.RUNNING and dead_run.finished is None
    lease = Lease.objects.get(profile=profile, agenda=Agenda.CONTACTS)
    assert lease.holder == first["holder"] and lease.expires_at > killed_at

    # A redelivery meanwhile (to the worker django-q2 forked in its place) is refused.
    jobs.enqueue(profile, Agenda.CONTACTS)
    wait_until("the refused run", lambda: Run.objects.filter(
        status=Run.Status.REFUSED).exists(), group)
    lease.refresh_from_db()
    assert lease.holder == first["holder"], "the refused run took the live lease"
    assert timezone.now() < lease.expires_at

    # Exchange finished the dead run's request: 4 contacts it created, stamped, never linked.
    wait_until("Exchange to finish the dead worker's request", lambda: len(
        exchange_records(ewsim, profile.mailbox, Kind.CONTACTS)) == 8, group, limit=10)
    assert Link.objects.filter(profile=profile, agenda=Agenda.CONTACTS).count() < 8

    # The lease expires on its own; the next delivery takes it and finishes the work.
    wait_until("the dead worker's lease to expire",
               lambda: timezone.now() > lease.expires_at, group, limit=lease_seconds + 5)
    jobs.enqueue(profile, Agenda.CONTACTS)
    later = Run.objects.exclude(pk=dead_run.pk).exclude(status=Run.Status.REFUSED)
    wait_until("the recovery run", lambda: later.filter(status__in=FINISHED).exists(), group)
    cluster.check_alive()
    (recovery,) = later
    assert recovery.status == Run.Status.SUCCESS, recovery.message
    assert recovery.remote_created == 0, "the dead run's contacts were created again"
    assert len(claimed()) == 2 and claimed()[1]["pid"] != first["pid"]
    assert Lease.objects.get(profile=profile, agenda=Agenda.CONTACTS).holder == ""
    assert_converged(ewsim, profile, contacts=8, events=0)
    # The dead run does not stay "running" forever: the run that took over closed it.
    dead_run.refresh_from_db()
    assert (dead_run.status, dead_run.message) == (Run.Status.FAILED, jobs.ABANDONED)
    assert dead_run.finished is not None
