"""`python bench/run.py ews-read --n 10000`: EwsMailbox.read_changes over N contacts.

Two cases, one JSON line each, against ewsim in a child process:
- initial: the first read of a folder of N contacts (state None), every page consumed as the
  engine would (applied, then dropped);
- no-change: the next read from the last page's state, with nothing changed.

The N contacts are seeded through the backend's own `create` (100 per request) before the
measured part. `ews_requests` is what the simulator counted, not what the client believes it
sent; `peak_rss_mb` is the client's peak during the case alone.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from bench.run import PASSWORD, USER, _reset_peak, _rss_mb, simulator

# The simulator on this machine, reached through the operator's switch (security/outbound.py).
os.environ.setdefault("MAILBOX_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
from engine.mailbox.base import BATCH_SIZE, Auth, ChangePage, MailboxAccess
from engine.mailbox.ews import EwsMailbox
from engine.records import ContactRecord, Kind, PostalAddress

CASES = ("initial", "no-change")
FOLDERS = 1


def max_requests(case: str, items: int) -> int:
    """The targets: a first read is at most three requests per 100 items (SyncFolderItems,
    GetItem, slack for a split batch) plus a few; a read with no changes is one per folder."""
    if case == "initial":
        return 3 * math.ceil(items / BATCH_SIZE) + 10
    return FOLDERS


def contact(i: int) -> ContactRecord:
    return ContactRecord(
        first_name=f"Given{i}", last_name=f"Surname{i}", company=f"Company {i % 97}",
        job_title="Buyer", email1=f"person{i}@example.com", phone_mobile=f"+420 600 {i:06d}",
        business_address=PostalAddress("Hlavní 1", "Praha", "", "110 00", "Czechia"),
        categories=("Hotline",), stamp=f"crm-{i}")


def _read(mailbox: EwsMailbox, folder: Any, state: str | None) -> tuple[int, str, bool]:
    items, errors, last = 0, False, state or ""
    page: ChangePage
    for page in mailbox.read_changes(folder, state):
        items += len(page.changes)
        errors = errors or bool(page.errors)
        last = page.state   # the checkpoint the engine would store
    return items, last, errors


def _line(case: str, n: int, items: int, seconds: float, requests: int,
          errors: bool) -> dict[str, Any]:
    target = max_requests(case, n)
    return {"benchmark": f"ews-read.{case}", "items": items, "seconds": round(seconds, 3),
            "ews_requests": requests, "peak_rss_mb": round(_rss_mb(os.getpid(), "VmHWM"), 1),
            "max_requests": target, "folders": FOLDERS,
            "ok": requests <= target and not errors and items == (n if case == "initial" else 0)}


def bench_ews_read(n: int, latency_ms: int) -> list[dict[str, Any]]:
    with simulator(latency_ms) as (url, control, _pid):
        access = MailboxAccess(mailbox=USER, endpoint=url, auth=Auth.BASIC, username=USER,
                               secret=PASSWORD, impersonate=False,
                               throttle_budget_seconds=60)
        results = []
        with EwsMailbox(access) as mailbox:
            folder = mailbox.get_folder("contacts", Kind.CONTACTS)
            for start in range(0, n, 1000):
                written = mailbox.create(folder, [contact(i)
                                                  for i in range(start, min(n, start + 1000))])
                if not all(r.ok for r in written):
                    raise RuntimeError(f"seeding failed: {next(r for r in written if not r.ok)}")
        state: str | None = None
        for case in CASES:
            # A new mailbox object per case, as every run of the engine opens its own.
            with EwsMailbox(access) as mailbox:
                control.reset_counters()
                _reset_peak(os.getpid())
                started = time.perf_counter()
                items, state, errors = _read(mailbox, folder, state)
                seconds = time.perf_counter() - started
            requests = sum(control.counters().values())
            results.append(_line(case, n, items, seconds, requests, errors))
        return results


def misses(result: dict[str, Any]) -> list[str]:
    if result["ok"]:
        return []
    return [f"{result['benchmark']}: {result['ews_requests']} requests for {result['items']} "
            f"items (target at most {result['max_requests']}), or errors while reading"]
