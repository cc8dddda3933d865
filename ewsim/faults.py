"""Fault injection per operation with a count, as real Exchange/O365 answers them
(notes §1.3 table and §3.5)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = {
    "server_busy",          # HTTP 500 SOAP fault ErrorServerBusy + BackOffMilliseconds
    "soap_fault",           # HTTP 500 SOAP fault with any response_code
    "http_500",             # HTTP 500 "Server Error in '/EWS' Application" (transient)
    "http_500_plain",       # HTTP 500 with a non-XML body
    "http_503",             # HTTP 503 + Retry-After
    "http_429",             # HTTP 429 + Retry-After (exchangelib does not retry it)
    "http_401",             # HTTP 401 regardless of credentials
    "connection_reset",     # TCP RST without a response
    "stream_reset",         # GetStreamingEvents: TCP RST halfway through the next events written
    "delay",                # sleep delay_ms, then answer normally
    "hold",                 # Graph: park the request until POST /_control/graph/release
    "invalid_sync_state",   # SyncFolderItems ErrorInvalidSyncStateData in the exact shape
    "irresolvable_conflict",  # every item of the request fails with ErrorIrresolvableConflict
    "response_error",       # every item of the request fails with response_code
}


@dataclass
class Fault:
    kind: str
    operation: str = "*"
    count: int = 1                      # remaining; -1 = until cleared
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "operation": self.operation, "count": self.count,
                **self.params}


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, kind: str, operation: str = "*", count: int = 1, **params: Any) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(KINDS)}")
        fault = Fault(kind=kind, operation=operation, count=count, params=params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, operation: str) -> Fault | None:
        """Consume one matching fault (first added first)."""
        with self._lock:
            for fault in self._faults:
                if fault.operation in ("*", operation):
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
