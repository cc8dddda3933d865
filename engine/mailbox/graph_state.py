"""The Graph backend's stored sync state: a delta link, and for calendars what a round saw."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any

STATE_PREFIX = "graph1:"


# --- sync states ----------------------------------------------------------------------------
@dataclasses.dataclass
class DeltaState:
    """What a stored state holds: the delta link, and for calendars the round's window, the
    series masters seen (id -> changeKey) and those already given out in this round."""

    link: str
    window: tuple[str, str] | None = None
    masters: dict[str, str] = dataclasses.field(default_factory=dict)
    given: list[str] = dataclasses.field(default_factory=list)
    # Short hashes of the single events seen: a removed instance is a deletion only if it
    # was one (a removed occurrence is its series' change, found by the series check).
    singles: list[str] = dataclasses.field(default_factory=list)
    # Whether this round removed an instance that was no single event (an occurrence): only
    # then can a series have changed or gone unseen, and the round end with the series check.
    occurrences_removed: bool = False

    def dump(self) -> str:
        data: dict[str, Any] = {"link": self.link}
        if self.window is not None:
            data.update(window=list(self.window), masters=self.masters, given=self.given,
                        singles=self.singles, occurrences_removed=self.occurrences_removed)
        return STATE_PREFIX + base64.urlsafe_b64encode(
            json.dumps(data, separators=(",", ":")).encode()).decode()

    @classmethod
    def load(cls, text: str | None) -> DeltaState | None:
        """None for no state or one this backend did not write (an EWS state, garbage)."""
        if not text or not text.startswith(STATE_PREFIX):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(text[len(STATE_PREFIX):]))
            window = tuple(data["window"]) if data.get("window") else None
            return cls(str(data["link"]), window,  # type: ignore[arg-type]
                       dict(data.get("masters") or {}), list(data.get("given") or []),
                       list(data.get("singles") or []),
                       bool(data.get("occurrences_removed", True)))
        except (ValueError, KeyError, TypeError):
            return None


def short_id(item_id: str) -> str:
    return hashlib.sha1(item_id.encode()).hexdigest()[:12]
