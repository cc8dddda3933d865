"""Many Raynet writes and look-ups at once. Raynet has no bulk writes: a first import of
3,000 contacts is 3,000 creates. They are sent up to `WORKERS` at a time (each thread with
its own HTTP session, raynet_client.py), every item keeping its own result or error; the new
records' versions are then read from one list per hundred ids instead of a read per record.

An e-mail look-up of many addresses reads the instance's persons once (a page of 1,000 per
request) and matches in memory, instead of two filtered lists per address.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from engine.crmstore.base import CrmUpdate, CrmWrite
from engine.records import Kind, Record

if TYPE_CHECKING:
    from engine.crmstore.raynet import RaynetCrm

# Requests in flight at once: Raynet asks its API users to keep to a few parallel requests,
# and four keep a 50 ms round trip from dominating a first sync (3,000 creates in well
# under a minute) without pressing the instance harder than a person clicking around.
WORKERS = 4
IDS_PER_LIST = 100      # ids in one `id[IN]` filter: a query string of well under 1 kB
EMAIL_COLUMNS = ("contactInfo.email", "contactInfo.email2")

T = TypeVar("T")
R = TypeVar("R")


def in_parallel(work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`work` of each item, at most WORKERS at a time, the results in the items' order."""
    if len(items) < 2:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(items)),
                            thread_name_prefix="raynet") as pool:
        return list(pool.map(work, items))


def create_many(crm: RaynetCrm, kind: Kind,
                items: Sequence[tuple[Record, str]]) -> list[CrmWrite]:
    _owner_first(crm)
    written = in_parallel(lambda item: crm.put_record(kind, *item), items)
    versions = read_versions(crm, kind, [w.key for w in written if w.ok])
    return [dataclasses.replace(w, version=versions.get(w.key, "")) if w.ok else w
            for w in written]


def update_many(crm: RaynetCrm, kind: Kind, updates: Sequence[CrmUpdate]) -> list[CrmWrite]:
    _owner_first(crm)
    return in_parallel(lambda u: crm.update(kind, u.key, u.record, u.fields, u.version),
                       updates)


def _owner_first(crm: RaynetCrm) -> None:
    """The owner looked up once, before the threads (a cached property); a look-up that
    fails is left to each write, which then says why as its own error."""
    from engine.crmstore.raynet_client import RaynetError

    with contextlib.suppress(RaynetError):
        _ = crm.owner


def read_versions(crm: RaynetCrm, kind: Kind, keys: Sequence[str]) -> dict[str, str]:
    """The `_version` of these records, a hundred to a list (not a read per record)."""
    from engine.crmstore.raynet import ENTITY

    wanted = sorted({k for k in keys if k.isdigit()}, key=int)
    versions: dict[str, str] = {}
    for start in range(0, len(wanted), IDS_PER_LIST):
        chunk = ",".join(wanted[start:start + IDS_PER_LIST])
        for row in crm.row_infos(ENTITY[kind], {"id[IN]": chunk}):
            versions[str(row["id"])] = str(row.get("_version", ""))
    return versions


def persons_by_email(rows: Iterator[dict[str, Any]],
                     addresses: Sequence[str]) -> dict[str, list[str]]:
    """Which of these persons' rows hold each address (in either e-mail column, case aside)."""
    wanted = {a.lower() for a in addresses if a}
    found: dict[str, set[int]] = {address: set() for address in wanted}
    for row in rows:
        for column in EMAIL_COLUMNS:
            value = str(_column(row, column) or "").strip().lower()
            if value in wanted:
                found[value].add(int(row["id"]))
    return {address: [str(k) for k in sorted(keys)] for address, keys in found.items()}


def _column(row: dict[str, Any], column: str) -> Any:
    """A list row's attribute, flattened (`contactInfo.email`) or nested."""
    if column in row:
        return row[column]
    head, _, rest = column.partition(".")
    inner = row.get(head)
    return inner.get(rest) if isinstance(inner, dict) else None
