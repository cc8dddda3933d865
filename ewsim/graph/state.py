"""Graph-only simulator state beside the shared store: counters, concurrency, delta expiry.

Reset with the server. Everything here is guarded by its own lock (requests run in
parallel threads; the store lock is held only while a handler reads or writes items).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from typing import Any

MAILBOX_CONCURRENCY = 4        # Exchange Online: 4 concurrent requests per app and mailbox
VIEW_STATES_KEPT = 2000        # calendarView delta snapshots kept (older tokens expire)


class ConcurrencyExceeded(Exception):
    pass


class GraphState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.released = threading.Condition(self.lock)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.counters: Counter[str] = Counter()      # requests per route name
            self.in_flight: Counter[str] = Counter()     # per mailbox, right now
            # Per mailbox: the most requests that arrived while others were in flight
            # (the rejected one included, so a client that overruns the cap shows 5),
            # and the most actually served at once (never above the cap).
            self.peak: Counter[str] = Counter()
            self.peak_admitted: Counter[str] = Counter()
            self.throttled: Counter[str] = Counter()     # per mailbox, 429 for concurrency
            self.limit = MAILBOX_CONCURRENCY
            # Bumped by the control plane: every delta token of the mailbox issued before
            # is then expired (410 SyncStateNotFound).
            self.generation: Counter[str] = Counter()
            self.unlicensed: set[str] = set()           # MailboxNotEnabledForRESTAPI
            self.view_states: OrderedDict[str, dict[str, Any]] = OrderedDict()
            self.holding = 0                             # requests parked by "hold"
            self.hold_released = 0                       # release generation
            self.expired_tokens: set[str] = set()        # bearer tokens expired by control
            self.released.notify_all()

    # --- per-mailbox concurrency -----------------------------------------------------------
    def enter(self, mailbox: str) -> None:
        with self.lock:
            self.peak[mailbox] = max(self.peak[mailbox], self.in_flight[mailbox] + 1)
            if self.in_flight[mailbox] >= self.limit:
                self.throttled[mailbox] += 1
                raise ConcurrencyExceeded(mailbox)
            self.in_flight[mailbox] += 1
            self.peak_admitted[mailbox] = max(self.peak_admitted[mailbox],
                                              self.in_flight[mailbox])

    def leave(self, mailbox: str) -> None:
        with self.lock:
            self.in_flight[mailbox] -= 1
            if self.in_flight[mailbox] <= 0:
                del self.in_flight[mailbox]

    # --- the "hold" fault: park requests until the control plane releases them -------------
    def hold(self, timeout: float = 30.0) -> None:
        with self.lock:
            generation = self.hold_released
            self.holding += 1
            try:
                self.released.wait_for(lambda: self.hold_released != generation, timeout)
            finally:
                self.holding -= 1

    def release(self) -> None:
        with self.lock:
            self.hold_released += 1
            self.released.notify_all()

    # --- calendarView delta snapshots ------------------------------------------------------
    def save_view(self, key: str, state: dict[str, Any]) -> None:
        with self.lock:
            self.view_states[key] = state
            self.view_states.move_to_end(key)
            while len(self.view_states) > VIEW_STATES_KEPT:
                self.view_states.popitem(last=False)

    def load_view(self, key: str) -> dict[str, Any] | None:
        with self.lock:
            return self.view_states.get(key)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": dict(self.counters), "total": sum(self.counters.values()),
                    "in_flight": dict(self.in_flight), "peak_concurrency": dict(self.peak),
                    "peak_admitted": dict(self.peak_admitted),
                    "throttled": dict(self.throttled), "holding": self.holding,
                    "concurrency_limit": self.limit}

    def clear_counters(self) -> None:
        with self.lock:
            self.counters.clear()
            self.peak.clear()
            self.peak_admitted.clear()
            self.throttled.clear()
