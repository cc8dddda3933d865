"""The CRM changes a run has still to look at."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from engine.crmstore.base import CrmChange
from engine.planner import Seen


class PendingCrmChanges:
    """The CRM's changes since the stored cursor, by key, as the run goes: a change is taken
    by the first step that handles its record (a linked Exchange item read, a match), and
    what is left is carried over at the end, in batches. Records that did not change but are
    to be looked at again (a retry, a user's decision, the calendar's window) join them."""

    def __init__(self, changes: Iterable[CrmChange] = ()) -> None:
        self._changes: dict[str, CrmChange] = {c.key: c for c in changes}

    def __len__(self) -> int:
        return len(self._changes)

    def __contains__(self, key: object) -> bool:
        return key in self._changes

    def __iter__(self) -> Iterator[str]:
        return iter(self._changes)

    def look_again(self, key: str) -> None:
        """A record looked at as if it had changed (unless its change is pending anyway)."""
        self._changes.setdefault(key, CrmChange(key, False))

    def take(self, key: str) -> None:
        """The record is handled by the step at hand: not carried over at the end."""
        self._changes.pop(key, None)

    def take_side(self, key: str, crm_side: dict[str, Seen]) -> Seen | None:
        """The CRM side of a linked pair, taken: None if it did not change; a record with
        None if it is gone."""
        if key not in self._changes:
            return None
        del self._changes[key]
        return crm_side.get(key) or Seen(key, "", None)

    def is_deletion(self, key: str) -> bool:
        change = self._changes.get(key)
        return change is not None and change.deleted

    def versions(self) -> dict[str, str]:
        """The version of each pending change that names one (not deletions)."""
        return {key: change.version for key, change in self._changes.items()
                if not change.deleted and change.version}
