"""Net changes of a folder since a position in its change log, read one page at a time.

`Folder.log` is the journal `Store.record` appends to: (mailbox seq, item id, kind). A sync
page (SyncFolderItems, Graph delta) wants each item that changed after `since` once, at the
position of its last change, with its changes collapsed into one net kind. Collapsing the whole
rest of the log on every page costs O(remaining changes) per page, O(n²) over a full read of a
large folder; a real server pages in constant time, and the benchmarks compare against FindItem,
which does. So each folder keeps, beside its log, every item's own list of changes: a page walks
the log from `since` and stops as soon as it has its items, judging each from its own list.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import Folder

Change = tuple[int, str, str]     # (mailbox seq, item id, net kind)


class ItemHistories:
    """Every item's changes (seq, kind) in a folder's log, caught up lazily.

    The log is append-only and only grows under the store's lock, so absorbing what was
    appended since the last read keeps the histories exact without hooks in `Store.record`.
    """

    def __init__(self, log: list[tuple[int, str, str]]) -> None:
        self.log = log
        self.absorbed = 0
        self.of: dict[str, list[tuple[int, str]]] = {}

    def caught_up(self) -> ItemHistories:
        for seq, item_id, kind in self.log[self.absorbed:]:
            self.of.setdefault(item_id, []).append((seq, kind))
        self.absorbed = len(self.log)
        return self


def _histories(folder: Folder) -> ItemHistories:
    # Kept on the folder object but not as a dataclass field: the state file stores the log
    # only, and a folder read back from it rebuilds its histories on first use.
    histories: ItemHistories | None = folder.__dict__.get("_item_histories")
    if histories is None or histories.log is not folder.log:
        histories = folder.__dict__["_item_histories"] = ItemHistories(folder.log)
    return histories.caught_up()


def net_kind(changes: list[tuple[int, str]], exists: bool) -> str | None:
    """One item's changes after a position collapsed into one; None: nothing to report.

    create+update => create, create+delete => nothing, update+read => update,
    read only => read flag change, anything+delete of a pre-existing item => delete.
    """
    first = changes[0][1]
    if first == "create":
        return "create" if exists else None
    if not exists:
        return "delete"
    if any(kind in ("update", "create") for _seq, kind in changes):
        return "update"
    return "read"


def net_changes(folder: Folder, since: int) -> Iterator[Change]:
    """Each item changed after `since` once, ordered by its last change, lazily.

    Taking a page of k items from the front reads the log entries between `since` and the
    k-th item's last change, whatever the folder's size.
    """
    histories = _histories(folder)
    log = folder.log
    for pos in range(bisect.bisect_right(log, since, key=lambda e: e[0]), len(log)):
        seq, item_id, _kind = log[pos]
        own = histories.of[item_id]
        if own[-1][0] != seq:
            continue            # the item changed again later: it is reported there
        after = own[bisect.bisect_right(own, since, key=lambda e: e[0]):]
        kind = net_kind(after, item_id in folder.items)
        if kind is not None:
            yield seq, item_id, kind
