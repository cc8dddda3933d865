"""Fault injection for the next N requests, or for requests whose path matches a pattern:
what a client of Raynet must survive (500, 503, 429 with Retry-After, a reset connection,
a slow answer)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = {"http_500", "http_503", "http_429", "connection_reset", "delay"}


@dataclass
class Fault:
    kind: str
    path: str = ".*"             # a regular expression searched in "METHOD /api/v2/…"
    count: int = 1               # remaining; -1 = until cleared
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "count": self.count, **self.params}


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, kind: str, path: str = ".*", count: int = 1, **params: Any) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(KINDS)}")
        re.compile(path)
        fault = Fault(kind=kind, path=path, count=count, params=params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, request_line: str) -> Fault | None:
        """Consume one matching fault, the first added first."""
        with self._lock:
            for fault in self._faults:
                if re.search(fault.path, request_line):
                    if fault.count > 0:
                        fault.count -= 1
                        if fault.count == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.as_dict() for f in self._faults]
