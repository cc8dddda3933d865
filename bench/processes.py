"""The product's background processes for the end-to-end benchmarks (propagation, schedule).

They run as a deployment runs them: `manage.py qcluster` (django-q2's workers, which also run
the dispatcher schedule) and `manage.py listen` (the change listener), each a child process of
its own, sharing this process's database through the environment that `setup_django` set up.
Their output goes to log files in VAR_DIR, which goes when the benchmark ends: a child's error
names the end of its log, and `BENCH_KEEP_TMP=1` keeps the folder (bench/scratch.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from bench.run import REPO


@contextmanager
def scratch_database(name: str) -> Iterator[None]:
    """When DATABASE_URL names a PostgreSQL server, a database of our own on it for the run,
    dropped afterwards (a benchmark creating 1,000 profiles must not land in someone's data);
    otherwise nothing: settings then use the SQLite file in VAR_DIR. Call before Django is
    set up, since settings read DATABASE_URL once."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        yield
        return
    import environ
    import psycopg

    server = environ.Env.db_url_config(url)
    database = f"bench_{name}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = {"host": server["HOST"] or "127.0.0.1", "port": server["PORT"] or 5432,
             "user": server["USER"] or "postgres", "password": server["PASSWORD"] or None,
             "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    path, _, query = url.partition("?")
    os.environ["DATABASE_URL"] = f"{path.rsplit('/', 1)[0]}/{database}" + (
        f"?{query}" if query else "")
    try:
        yield
    finally:
        os.environ["DATABASE_URL"] = url
        with suppress(Exception):
            from django.db import connections

            connections.close_all()
        with psycopg.connect(**admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def database_vendor() -> str:
    from django.db import connection

    return str(connection.vendor)


class Child:
    """One `manage.py` command in a process group of its own, its output in a log file."""

    def __init__(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = Path(os.environ["VAR_DIR"]) / f"{name}.log"
        with self.log.open("wb") as out:
            # A process group of its own: stopping it reaches every process django-q2 forked.
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", *args], cwd=REPO, stdout=out,
                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, process_group=0)

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}; "
                               f"the end of {self.log}:\n{self.log_tail()}")

    def log_tail(self, size: int = 3000) -> str:
        with suppress(OSError):
            return self.log.read_bytes()[-size:].decode(errors="replace")
        return ""

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is not None:
            return
        # One SIGTERM only: django-q2's cluster can hang when a second signal arrives while
        # it is stopping (syncsite/management/commands/serve.py does the same).
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def children(*started: Child) -> Iterator[tuple[Child, ...]]:
    try:
        yield started
    finally:
        for child in started:
            child.stop()


def start_cluster(workers: int | None = None) -> Child:
    env = {"Q_WORKERS": str(workers)} if workers else {}
    return Child("qcluster", "qcluster", env=env)


def wait_for_cluster(cluster: Child, limit: float = 60.0) -> float:
    """Until the cluster has run one task (the worker heartbeat); returns the seconds it took.
    Started and idle, so what is timed afterwards is never the cluster's start-up."""
    from django_q.tasks import async_task, fetch

    started = time.monotonic()
    task_id = async_task("engine.jobs.beat", task_name="bench: cluster ready?")
    while fetch(task_id) is None:
        cluster.check_alive()
        if time.monotonic() - started > limit:
            raise RuntimeError(f"the worker cluster ran no task within {limit:.0f} s; "
                               f"the end of {cluster.log}:\n{cluster.log_tail()}")
        time.sleep(0.1)
    return time.monotonic() - started


def descendants(pid: int) -> list[int]:
    """The process and every process below it (django-q2 forks a sentinel, a pusher, a monitor
    and the workers, and replaces workers as they recycle)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the process tree under `pid` so far, the children it has
    reaped included (django-q2 replaces workers as they recycle; their time stays counted)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for process in descendants(pid):
        with suppress(OSError):
            # Fields after the command's closing parenthesis: utime, stime, cutime, cstime
            # are the 12th to 15th of them.
            fields = Path(f"/proc/{process}/stat").read_text().rpartition(")")[2].split()
            total += sum(int(value) for value in fields[11:15])
    return total / ticks


def peak_rss_mb(pid: int) -> float:
    """The largest peak RSS (VmHWM) of one process in the tree under `pid`, in MB."""
    peaks = [0.0]
    for process in descendants(pid):
        with suppress(OSError):
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return round(max(peaks), 1)


class PeakRss:
    """The largest per-process peak RSS seen in some process trees, sampled now and then:
    workers that django-q2 recycles take their peak with them."""

    def __init__(self, *roots: Child) -> None:
        self.roots = roots
        self.peak = {child.name: 0.0 for child in roots}

    def sample(self) -> None:
        for child in self.roots:
            self.peak[child.name] = max(self.peak[child.name], peak_rss_mb(child.pid))

    def overall(self) -> float:
        self.sample()
        return max(self.peak.values())
