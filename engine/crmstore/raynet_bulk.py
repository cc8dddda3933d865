"""Many Raynet writes and look-ups at once. Raynet has no bulk writes: a first import of
3,000 contacts is 3,000 creates. They are sent up to `WORKERS` at a time (each thread with
its own HTTP session, raynet_client.py), every item keeping its own result or error; the new
records' versions are then read from one list per hundred ids instead of a read per record.

A look-up of many e-mail addresses or external ids reads the entity's records once (a page of
1,000 per request) and matches in memory, instead of a request or two per address or id.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    if kind is Kind.CALENDAR:
        # The batch's attendees looked up at once (one list of the persons past a couple of
        # addresses), not two requests an address from each create's thread.
        crm.find_by_email([a.email for record, _ in items
                           for a in getattr(record, "attendees", ()) if a.email])
    written = in_parallel(lambda item: crm.put_record(kind, *item), items)
    crm.made(kind, written)
    # A create whose record was read again after it (a series, attendees) knows its version.
    versions = read_versions(crm, kind, [w.key for w in written if w.ok and not w.version])
    return [dataclasses.replace(w, version=versions.get(w.key, ""))
            if w.ok and not w.version else w for w in written]


def update_many(crm: RaynetCrm, kind: Kind, updates: Sequence[CrmUpdate]) -> list[CrmWrite]:
    _owner_first(crm)
    written: list[CrmWrite | None] = [None] * len(updates)
    # A record named twice in one batch is written in the batch's order, never at once by
    # two threads (each edit reads the version it compares and the one it reports): rounds
    # holding each record at most once.
    for round_ in _rounds([u.key for u in updates]):
        results = in_parallel(lambda i: crm.edit_record(
            kind, updates[i].key, updates[i].record, updates[i].fields, updates[i].version),
            round_)
        for index, result in zip(round_, results, strict=True):
            written[index] = result
    crm.made(kind, [])   # the budget the answers told
    return [w for w in written if w is not None]


def _rounds(keys: Sequence[str]) -> list[list[int]]:
    """Positions of `keys` in rounds where no key comes twice, each key's in their order."""
    rounds: list[list[int]] = []
    seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        number = seen.get(key, -1) + 1
        seen[key] = number
        if number == len(rounds):
            rounds.append([])
        rounds[number].append(index)
    return rounds


def _owner_first(crm: RaynetCrm) -> None:
    """The owner looked up once, before the threads (a cached property); a look-up that
    fails is left to each write, which then says why as its own error."""
    from engine.crmstore.raynet_client import RaynetError

    with contextlib.suppress(RaynetError):
        _ = crm.owner


def read_versions(crm: RaynetCrm, kind: Kind, keys: Sequence[str]) -> dict[str, str]:
    """The `_version` of these records, a hundred to a list (not a read per record)."""
    wanted = sorted({k for k in keys if k.isdigit()}, key=int)
    versions: dict[str, str] = {}
    for start in range(0, len(wanted), IDS_PER_LIST):
        chunk = ",".join(wanted[start:start + IDS_PER_LIST])
        for row in crm.row_infos(crm.entities[kind], {"id[IN]": chunk}):
            versions[str(row["id"])] = str(row.get("_version", ""))
    return versions


class ListedRecords:
    """Every record of an entity as listed (full rows), kept until this backend writes:
    a batch's look-ups by origin and by e-mail share one read. A change someone makes in
    Raynet meanwhile is as unseen as in a list read a moment earlier."""

    def __init__(self, lister: Callable[[str, dict[str, Any]], Iterator[dict[str, Any]]]
                 ) -> None:
        self._lister = lister
        self._rows: dict[str, list[dict[str, Any]]] = {}

    def rows(self, entity: str) -> list[dict[str, Any]]:
        if entity not in self._rows:
            self._rows[entity] = list(self._lister(entity, {}))
        return self._rows[entity]

    def holds(self, entity: str) -> bool:
        return entity in self._rows

    def forget(self, entity: str | None = None) -> None:
        """A write to `entity` (None: to any) makes its list out of date."""
        if entity is None:
            self._rows.clear()
        else:
            self._rows.pop(entity, None)


def by_ext_id(rows: Iterable[dict[str, Any]], ext_ids: Sequence[str]) -> dict[str, str] | None:
    """Which record carries each external id; None when the rows do not show their external
    ids (then each must be looked up by itself)."""
    wanted = set(ext_ids)
    found: dict[str, str] = {}
    for row in rows:
        if "extIds" not in row:
            return None
        for ext_id in row.get("extIds") or ():
            if ext_id in wanted:
                found.setdefault(str(ext_id), str(row["id"]))
    return found


def persons_by_email(rows: Iterable[dict[str, Any]],
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
