"""Benchmarks. Each prints one JSON line; run by hand or by CI as a smoke run, never as timed tests.

    python bench/run.py ewsim --n 3000
        exchangelib bulk-creates N contacts in ewsim and reads them back.
    python bench/run.py ewsim --attachment-mb 100
        exchangelib streams an attachment of that size out of ewsim with `att.fp`; reports the
        simulator's own peak memory, which must stay under 3x the attachment size.
    python bench/run.py contacts-first-sync --n 3000 [--case export] [--repeat 3]
        a profile's first contact sync (export, import, two-way), one line per case, against
        exchangelib alone doing the same EWS work (bench/contacts.py); exits non-zero when a
        case misses its targets, naming them on stderr. Each case's baseline and product
        run one after the other, --repeat times (each repeat a fresh process): its line
        holds the median ratio, its spread and every run's seconds (bench/repeat.py).
    python bench/run.py calendar-first-sync --n 2000 [--case import] [--repeat 3]
        a profile's first calendar sync (export, import, two-way), one line per case, against
        exchangelib alone doing the same EWS work (bench/calendar.py); exits non-zero when a
        case misses its targets, naming them on stderr.
    python bench/run.py contacts-first-sync --n 3000 --crm raynet --crm-latency-ms 50
    python bench/run.py calendar-first-sync --n 2000 --crm raynet --crm-latency-ms 50
        the import into a Raynet instance on raynetsim, each API request delayed: seconds,
        Raynet requests per record written and by kind, the most in flight at once, EWS
        requests; at most 120 s, 4 in flight, 2.1 requests per record (bench/raynet.py).
    ... --backend graph (contacts-first-sync, calendar-first-sync, mail-import)
        the same runs through an Exchange Online (Microsoft Graph) connection to ewsim's
        Graph front door: same JSON fields, same targets (requests: see bench/backend.py).
    python bench/run.py ews-read --n 10000
        EwsMailbox's first read of N contacts and the next read with no changes, one line each
        (bench/ews_read.py); exits non-zero when a read needs more requests than its target.
    python bench/run.py mail-import --n 1000 [--attachment-mb 100] [--latency-ms 50]
        one MailImport run over N e-mails with two 100 KB attachments each (at most 15 s and
        0.1 requests per e-mail), or
        over one e-mail with one attachment of that size, its peak RSS against the same run
        without it (at most 50 MB above) (bench/mail.py).
    python bench/run.py mail-import --n 1000 --share smb [--repeat 3] [--attachment-mb 100]
        the same onto an SMB share (Samba on loopback): the run's seconds against the
        local-disk run just before it in the same process, --repeat pairs, the median ratio at
        most 1.5x; with --attachment-mb, peak RSS as above (bench/mail_smb.py).
    python bench/run.py propagation --n 50 [--smoke]
        with the listener and a worker cluster running as in production, N changes one at a
        time in each direction (Exchange -> CRM, CRM -> Exchange), each timed until the other
        side shows it; one line per direction, p95 at most 5 s (bench/propagation.py;
        with --crm raynet, Raynet's changes by webhook: bench/propagation_raynet.py;
        with --backend graph, Graph's change notifications: bench/propagation_graph.py).
    python bench/run.py schedule --profiles 1000 --latency-ms 30 [--smoke]
        every agenda of N profiles due at once, dispatched and run by 4 workers: the cycle
        at most 300 s, worker utilization, failed runs (bench/schedule.py).
    python bench/run.py schedule --profiles 10000 --latency-ms 30 --broker redis --items 2
            --no-change-only        (with DATABASE_URL naming a PostgreSQL server)
        the steady state: after an untimed first cycle, a cycle in which nothing changed,
        at least 35 runs/s, and where one no-change run's time and queries go.

The simulator runs in a child process, so its memory is measured apart from the client's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this file's own directory comes first on sys.path: bench/calendar.py would
# then shadow the standard library's calendar module (which http.cookiejar, email... import).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

from exchangelib import (  # noqa: E402 (after the path set-up above)
    BASIC,
    DELEGATE,
    Account,
    Build,
    Configuration,
    Contact,
    Credentials,
    EWSTimeZone,
    FailFast,
    Version,
)
from exchangelib.indexed_properties import EmailAddress  # noqa: E402

from ewsim.testing import ControlClient  # noqa: E402

USER, PASSWORD = "bench@example.com", "bench-secret"
MB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def simulator(latency_ms: int = 0) -> Iterator[tuple[str, ControlClient, int]]:
    """Run ewsim in a child process; yield (EWS URL, control client, child pid)."""
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "ewsim", "--port", str(port), "--latency-ms", str(latency_ms)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    control = ControlClient(base)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                control.counters()
                break
            except OSError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError("ewsim did not start") from None
                time.sleep(0.1)
        control.add_user(USER, PASSWORD, display_name="Benchmark")
        yield f"{base}/EWS/Exchange.asmx", control, child.pid
    finally:
        child.terminate()
        child.wait(timeout=10)


def _account(url: str, user: str = USER, password: str = PASSWORD) -> Account:
    config = Configuration(service_endpoint=url, credentials=Credentials(user, password),
                           auth_type=BASIC, version=Version(build=Build(15, 1, 2507, 6)),
                           retry_policy=FailFast(), max_connections=2)
    return Account(user, config=config, autodiscover=False, access_type=DELEGATE,
                   default_timezone=EWSTimeZone("Europe/Prague"), locale="en_US")


def _rss_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak since start or since the last reset) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _reset_peak(pid: int) -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _own_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_contacts(n: int, latency_ms: int) -> dict[str, Any]:
    with simulator(latency_ms) as (url, control, pid):
        account = _account(url)
        account.contacts.refresh()   # folder lookup outside the measured part
        control.reset_counters()
        contacts = [
            Contact(folder=account.contacts, given_name=f"Given{i}", surname=f"Surname{i}",
                    display_name=f"Given{i} Surname{i}", company_name=f"Company {i % 97}",
                    email_addresses=[EmailAddress(email=f"person{i}@example.com")])
            for i in range(n)
        ]
        started = time.perf_counter()
        created = account.bulk_create(folder=account.contacts, items=contacts, chunk_size=100)
        read = sum(1 for _ in account.contacts.all().only(
            "display_name", "email_addresses", "company_name"))
        seconds = time.perf_counter() - started
        errors = [c for c in created if isinstance(c, Exception)]
        requests = sum(control.counters().values())
        return {"benchmark": "ewsim.contacts", "items": n, "seconds": round(seconds, 3),
                "ews_requests": requests, "items_per_second": round(2 * n / seconds, 1),
                "peak_rss_mb": round(_own_peak_rss_mb(), 1),
                "sim_peak_rss_mb": round(_rss_mb(pid, "VmHWM"), 1),
                "created": len(created) - len(errors), "read_back": read,
                "errors": len(errors)}


def bench_attachment(size_mb: int, latency_ms: int) -> dict[str, Any]:
    size = size_mb * MB
    with simulator(latency_ms) as (url, control, pid):
        account = _account(url)
        account.inbox.refresh()
        sim_before = _rss_mb(pid, "VmRSS")
        _reset_peak(pid)
        control.reset_counters()
        started = time.perf_counter()
        control.deliver(USER, subject="Large attachment", attachments=[
            {"name": "large.bin", "content_type": "application/octet-stream", "size": size}])
        message = next(iter(account.inbox.all().only("attachments")))
        (attachment,) = message.attachments
        received = 0
        with attachment.fp as stream:
            while chunk := stream.read(MB):
                received += len(chunk)
        seconds = time.perf_counter() - started
        sim_peak = _rss_mb(pid, "VmHWM")
        growth = sim_peak - sim_before
        return {"benchmark": "ewsim.attachment", "items": 1, "seconds": round(seconds, 3),
                "ews_requests": sum(control.counters().values()),
                "items_per_second": round(1 / seconds, 3),
                "peak_rss_mb": round(_own_peak_rss_mb(), 1), "attachment_mb": size_mb,
                "received_mb": round(received / MB, 1),
                "sim_rss_before_mb": round(sim_before, 1), "sim_peak_rss_mb": round(sim_peak, 1),
                "sim_growth_mb": round(growth, 1),
                "sim_growth_within_3x": growth < 3 * size_mb and received == size}


def repeated(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The benchmark run `args.repeat` times, each repeat in a fresh child process (its own
    simulator and throwaway database) that measures every case's baseline and product one
    right after the other; per case, the summary of bench/repeat.py (the median ratio, its
    spread, every run's seconds)."""
    from bench import repeat

    argv = [args.benchmark, "--n", str(args.n), "--latency-ms", str(args.latency_ms),
            "--backend", args.backend, *(f"--case={case}" for case in args.case or ())]
    runs = [_child_run([*argv, "--repeat", "1"]) for _ in range(args.repeat)]
    return [repeat.summary(lines) for lines in repeat.interleaved(runs).values()]


def _child_run(argv: list[str]) -> list[dict[str, Any]]:
    """This script run once in a child process whose temporary directory is a folder of its
    own, removed afterwards even when the child was killed before it could clean up."""
    from bench import scratch

    with scratch.scoped_directory("bench-repeat-") as folder:
        out, err = folder / "stdout", folder / "stderr"
        with out.open("w") as stdout, err.open("w") as stderr:
            child = subprocess.Popen([sys.executable, __file__, *argv], cwd=REPO,
                                     stdout=stdout, stderr=stderr, text=True,
                                     env={**os.environ, "TMPDIR": str(folder)})
            try:
                child.wait()
            except KeyboardInterrupt:
                # Ctrl-C has reached the child too (the whole process group gets it): let it
                # stop its simulator and remove its folders undisturbed.
                _stop(child, terminate=False)
                raise
            except BaseException:
                _stop(child, terminate=True)
                raise
        lines = [json.loads(line) for line in out.read_text().splitlines()
                 if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"a repeated run printed no result:\n{err.read_text()[-3000:]}")
        return lines


def _stop(child: subprocess.Popen[str], terminate: bool) -> None:
    """A child given time to end as it would want (SIGTERM, when `terminate`, lets it stop
    its simulator and remove its folders), killed only when it does not."""
    if terminate and child.poll() is None:
        child.terminate()
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _single(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run's lines with the same summary fields as a repeated run's."""
    from bench import repeat

    return [repeat.summary([line]) for line in lines]


def bench_raynet_sync(args: argparse.Namespace, agenda: str) -> list[dict[str, Any]]:
    """`--crm raynet`: the import into a Raynet instance on raynetsim, run once (a first
    sync against a 50 ms API lasts a minute or more: its time varies little)."""
    from bench import raynet

    if args.case and args.case != ["import"]:
        raise SystemExit("--crm raynet runs the import case only (bench/raynet.py)")
    return raynet.bench_first_sync(agenda, args.n, args.latency_ms, args.crm_latency_ms,
                                   check_timings=not args.smoke)


def bench_first_sync(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.crm == "raynet":
        return bench_raynet_sync(args, "contacts")
    if args.repeat > 1 and not args.smoke:
        return repeated(args)
    # Imported here: it sets Django up, which the ewsim benchmarks do without.
    from bench import contacts

    cases = tuple(args.case) if args.case else contacts.CASES
    return _single(contacts.bench_first_sync(args.n, args.latency_ms, cases,
                                             check_timings=not args.smoke))


def _first_sync_misses(result: dict[str, Any]) -> list[str]:
    from bench import contacts, raynet

    if result.get("crm") == "raynet":
        return raynet.misses(result)

    return contacts.misses(result)


def bench_calendar_sync(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.crm == "raynet":
        return bench_raynet_sync(args, "calendar")
    if args.repeat > 1 and not args.smoke:
        return repeated(args)
    from bench import calendar

    cases = tuple(args.case) if args.case else calendar.CASES
    return _single(calendar.bench_first_sync(args.n, args.latency_ms, cases,
                                             check_timings=not args.smoke))


def _calendar_sync_misses(result: dict[str, Any]) -> list[str]:
    from bench import calendar, raynet

    if result.get("crm") == "raynet":
        return raynet.misses(result)

    return calendar.misses(result)


def bench_ews_read(args: argparse.Namespace) -> list[dict[str, Any]]:
    from bench import ews_read

    return ews_read.bench_ews_read(args.n, args.latency_ms)


def _ews_read_misses(result: dict[str, Any]) -> list[str]:
    from bench import ews_read

    return ews_read.misses(result)


def bench_mail_import(args: argparse.Namespace) -> dict[str, Any]:
    from bench import mail

    return mail.bench_mail_import(args.n, args.latency_ms, args.attachment_mb,
                                  check_timings=not args.smoke, share=args.share,
                                  repeat=1 if args.smoke else args.repeat)


def _mail_import_misses(result: dict[str, Any]) -> list[str]:
    from bench import mail

    return mail.misses(result)


def bench_propagation(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.crm == "raynet":
        from bench import propagation_raynet

        return propagation_raynet.bench_propagation(args.n, args.latency_ms, args.smoke)
    if args.backend == "graph":   # Graph's change notifications, through the web server
        from bench import propagation_graph

        return propagation_graph.bench_propagation(args.n, args.latency_ms, args.smoke)
    from bench import propagation

    return propagation.bench_propagation(args.n, args.latency_ms, args.smoke)


def _propagation_misses(result: dict[str, Any]) -> list[str]:
    from bench import propagation

    return propagation.misses(result)


def bench_schedule(args: argparse.Namespace) -> dict[str, Any]:
    from bench import schedule

    return schedule.bench_schedule(args.profiles, args.latency_ms, args.smoke,
                                   broker=args.broker, items=args.items,
                                   no_change_only=args.no_change_only)


def _schedule_misses(result: dict[str, Any]) -> list[str]:
    from bench import schedule

    return schedule.misses(result)


def _ewsim_misses(result: dict[str, Any]) -> list[str]:
    if result.get("errors") or not result.get("sim_growth_within_3x", True):
        return [f"{result['benchmark']}: errors, or the simulator grew more than 3x"]
    return []


BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict[str, Any] | list[dict[str, Any]]]] = {
    "ewsim": lambda args: (bench_attachment(args.attachment_mb, args.latency_ms)
                           if args.attachment_mb else bench_contacts(args.n, args.latency_ms)),
    "contacts-first-sync": bench_first_sync,
    "calendar-first-sync": bench_calendar_sync,
    "ews-read": bench_ews_read,
    "mail-import": bench_mail_import,
    "propagation": bench_propagation,
    "schedule": bench_schedule,
}
MISSES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "ewsim": _ewsim_misses, "contacts-first-sync": _first_sync_misses,
    "calendar-first-sync": _calendar_sync_misses,
    "ews-read": _ews_read_misses,
    "mail-import": _mail_import_misses,
    "propagation": _propagation_misses,
    "schedule": _schedule_misses,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS))
    parser.add_argument("--n", type=int, default=3000, help="items to create and read back")
    parser.add_argument("--share", choices=["local", "smb"], default="local",
                        help="mail-import: save attachments on a local folder, or on an SMB "
                             "share (a Samba started on loopback; needs smbd and root)")
    parser.add_argument("--attachment-mb", type=int, default=0,
                        help="stream one attachment of this size instead")
    parser.add_argument("--latency-ms", type=int, default=0, help="added per EWS request")
    parser.add_argument("--case", action="append", choices=("export", "import", "two-way"),
                        help="contacts-/calendar-first-sync: only this case (repeatable)")
    parser.add_argument("--profiles", type=int, default=1000,
                        help="schedule: profiles (each its own mailbox), all due at once")
    parser.add_argument("--broker", choices=("orm", "redis"), default="orm",
                        help="schedule: the cluster's broker (redis: REDIS_URL, else "
                             "127.0.0.1:6379)")
    parser.add_argument("--items", type=int, default=20,
                        help="schedule: contacts and events per mailbox")
    parser.add_argument("--no-change-only", action="store_true",
                        help="schedule: the first cycle only reaches the steady state; the "
                             "target is the no-change cycle's runs per second")
    parser.add_argument("--smoke", action="store_true",
                        help="*-first-sync, propagation, schedule: check results and request "
                             "counts, not timings (CI's shared machines are too noisy for "
                             "those)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="contacts-/calendar-first-sync: baseline-and-product pairs, "
                             "each repeat in a fresh process; per case the median ratio, its "
                             "spread and every run's seconds are printed; mail-import --share "
                             "smb: local-and-share pairs in one process, the median pair's "
                             "line (not with --smoke, which runs once)")
    parser.add_argument("--backend", choices=("ews", "graph"), default="ews",
                        help="contacts-/calendar-first-sync, mail-import, propagation: the "
                             "profiles' mailbox backend (graph: ewsim's Microsoft Graph front "
                             "door; propagation: its changes by change notification)")
    parser.add_argument("--crm", choices=("builtin", "raynet"), default="builtin",
                        help="contacts-/calendar-first-sync: the organization's CRM (raynet: "
                             "a Raynet instance on raynetsim, the import case; "
                             "bench/raynet.py); propagation: its changes coming by webhook")
    parser.add_argument("--crm-latency-ms", type=int, default=0,
                        help="--crm raynet: added per Raynet API request (a realistic 50)")
    args = parser.parse_args(argv)
    from bench import backend, scratch

    scratch.exit_on_sigterm()

    backend.choose(args.backend)
    outcome = BENCHMARKS[args.benchmark](args)
    results = outcome if isinstance(outcome, list) else [outcome]
    missed: list[str] = []
    for result in results:
        print(json.dumps(result, ensure_ascii=False), flush=True)
        missed += MISSES[args.benchmark](result)
    for line in missed:
        print(f"target missed: {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
