"""What every fault campaign shares: its size and seed from the environment, the worker as a
process of its own, and the switch that SIGKILLs it at a chosen EWS request.

Sizes: each campaign reads its count from the environment (RELIABILITY_KILLS,
RELIABILITY_ITEMS, RELIABILITY_FAULTS, RELIABILITY_MAILS, RELIABILITY_RESTARTS) and defaults to
a reduced count the normal suite runs in seconds; docs/reliability.md has the full-size
commands. Randomness: one seed per test, from RELIABILITY_SEED or drawn afresh, printed (and
named in every failure) so that a failing campaign can be replayed exactly.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ewsim import faults as ewsim_faults
from ewsim import server as ewsim_server_module

REPO = Path(__file__).resolve().parents[2]


def count(name: str, default: int) -> int:
    """A campaign size from the environment, e.g. RELIABILITY_KILLS=50."""
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise pytest.UsageError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise pytest.UsageError(f"{name} must be at least 1, not {value}")
    return value


def seeded_random(test_name: str) -> tuple[random.Random, int]:
    """The test's random source and its seed (RELIABILITY_SEED replays one)."""
    raw = os.environ.get("RELIABILITY_SEED", "")
    seed = int(raw) if raw else random.SystemRandom().randrange(2**32)
    # Printed at once: pytest shows it with the failure's captured output.
    print(f"{test_name}: RELIABILITY_SEED={seed}")
    return random.Random(seed), seed


# --- the worker, a process of its own -------------------------------------------------------
# One scheduled job's work, as a django-q2 worker runs it: engine.jobs.run_job (the sync, then
# closing runs a dead worker left "running", then the job's bookkeeping).
WORKER = r"""
import sys

import django

django.setup()

from engine.jobs import run_job

print("status:", run_job(int(sys.argv[1]), sys.argv[2], trigger="manual"), flush=True)
"""


@dataclass
class Outcome:
    """How one worker process ended."""

    returncode: int
    killed: bool          # by the kill switch (SIGKILL), not by its own end
    output: str
    status: str = ""      # the run's status the worker printed, when it finished


@dataclass
class Worker:
    """Starts one worker process per run, against the database the test shares with it."""

    database_url: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    started: int = 0

    def env(self) -> dict[str, str]:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
               "DATABASE_URL": self.database_url, "PYTHONPATH": str(REPO),
               "LOG_LEVEL": "WARNING", **self.extra_env}
        env.pop("REDIS_URL", None)   # the worker runs the job itself: no broker involved
        return env

    def start(self, profile_id: int, agenda: str) -> subprocess.Popen[bytes]:
        self.started += 1
        log = self.log_dir / f"worker-{self.started:04d}-{agenda}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", WORKER, str(profile_id), agenda], cwd=REPO,
                stdout=out, stderr=subprocess.STDOUT, env=self.env(), process_group=0)
        process.log = log  # type: ignore[attr-defined]
        return process

    @staticmethod
    def finish(process: subprocess.Popen[bytes], switch: KillSwitch | None = None,
               timeout: float = 600) -> Outcome:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            raise AssertionError(f"the worker took over {timeout:.0f} s:\n"
                                 + process.log.read_text(errors="replace")[-4000:]) from None
        output = process.log.read_text(errors="replace")
        killed = switch is not None and switch.fired and process.returncode == -signal.SIGKILL
        status = next((line.split(":", 1)[1].strip() for line in output.splitlines()
                       if line.startswith("status:")), "")
        return Outcome(process.returncode, killed, output, status)


# --- the kill switch ------------------------------------------------------------------------
@dataclass
class KillPoint:
    """Where to kill: at the `request`-th EWS request of the run, `before` ewsim handles it
    (the request is lost with the worker) or after ewsim answered it (Exchange did the work,
    the worker never recorded it)."""

    request: int
    before: bool

    def __str__(self) -> str:
        return f"{'before' if self.before else 'after'} EWS request #{self.request}"


class KillSwitch:
    """Counts the EWS requests ewsim receives while armed and SIGKILLs the armed process at
    the chosen one. It wraps ewsim's request handler (ewsim itself is unchanged: every request
    it does handle, it handles fully), and keeps count of requests in flight, so the test
    touches the mailbox only once the dead worker's last requests are done.

    With an `action`, it does that instead of killing (e.g. restart the database under the
    worker), and ewsim handles the request as usual."""

    def __init__(self, action: Callable[[], None] | None = None) -> None:
        self.action = action
        self._lock = threading.Condition()
        self._pid: int | None = None
        self._point: KillPoint | None = None
        self.seen = 0
        self.in_flight = 0
        self.fired = False
        self.operation = ""   # the EWS operation of the request it fired at

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original: Callable[..., None] = ewsim_server_module._Handler._ews
        switch = self

        def _ews(handler: Any, body: bytes) -> None:
            operation = switch._operation(body)
            with switch._lock:
                switch.in_flight += 1
                switch.seen += 1
                point, number = switch._point, switch.seen
            try:
                at_point = point is not None and number == point.request
                if at_point and point.before:
                    switch._kill(operation)
                    if switch.action is None:
                        return   # lost with the worker: ewsim never saw it
                original(handler, body)
                if at_point and not point.before:
                    switch._kill(operation)
            finally:
                with switch._lock:
                    switch.in_flight -= 1
                    switch._lock.notify_all()

        monkeypatch.setattr(ewsim_server_module._Handler, "_ews", _ews)
        original_error = ewsim_server_module._HTTPServer.handle_error

        def handle_error(server: Any, request: Any, client_address: Any) -> None:
            # A killed worker's connections end in resets: nothing to print about.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                original_error(server, request, client_address)

        monkeypatch.setattr(ewsim_server_module._HTTPServer, "handle_error", handle_error)

    @staticmethod
    def _operation(body: bytes) -> str:
        # Only for the report: the first element inside the SOAP Body.
        text = body[:4000].decode(errors="replace")
        start = text.find("Body>")
        tag = text[start + 5:].lstrip().split(">", 1)[0].split()[0] if start >= 0 else ""
        return tag.lstrip("<").split(":")[-1]

    def _kill(self, operation: str) -> None:
        with self._lock:
            pid, self._pid = self._pid, None
            self.fired = pid is not None
            self.operation = operation
        if pid is not None and self.action is not None:
            self.action()
        elif pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    @contextlib.contextmanager
    def armed(self, process: subprocess.Popen[bytes], point: KillPoint | None) -> Iterator[None]:
        with self._lock:
            self._pid, self._point, self.seen, self.fired = process.pid, point, 0, False
            self.operation = ""
        try:
            yield
        finally:
            with self._lock:
                self._pid = self._point = None

    def wait_quiet(self, limit: float = 120) -> None:
        """Until no request is being handled (the dead worker's last ones included)."""
        deadline = time.monotonic() + limit
        with self._lock:
            while self.in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.in_flight} EWS requests still in flight")
                self._lock.wait(left)


# --- faults at a chosen request -------------------------------------------------------------
@dataclass
class FaultPlan:
    """One fault: `kind` with its ewsim parameters, from the `request`-th EWS request of a run
    (of an `operation`'s requests, when one is named) for `lasting` requests."""

    kind: str
    request: int
    lasting: int = 1
    operation: str = "*"
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = f"{self.operation} " if self.operation != "*" else ""
        return (f"{self.kind}{self.params or ''} at {where}request #{self.request}"
                f" × {self.lasting}")


class FaultAtRequest(ewsim_faults.FaultInjector):
    """ewsim's fault injector, which also answers the planned fault at the planned request:
    the control plane's faults fire at the next matching request, this one at any point of a
    run. What ewsim answers for the fault is ewsim's own (`_apply_fault`)."""

    def __init__(self) -> None:
        super().__init__()
        self.plan: FaultPlan | None = None
        self.seen = 0
        self.fired = 0

    def arm(self, plan: FaultPlan | None) -> None:
        """Fire `plan` from now on (None: no more); `fired` counts its faults until the next
        plan."""
        with self._lock:
            if plan is not None:
                self.seen, self.fired = 0, 0
            self.plan = plan

    def take(self, operation: str) -> ewsim_faults.Fault | None:
        with self._lock:
            plan = self.plan
            if plan is not None and plan.operation in ("*", operation):
                self.seen += 1
                if plan.request <= self.seen < plan.request + plan.lasting:
                    self.fired += 1
                    return ewsim_faults.Fault(plan.kind, operation, 1, dict(plan.params))
        return super().take(operation)
