"""The daily request budget per instance: 24,000 requests per UTC day unless configured,
`X-Ratelimit-Limit/Remaining/Reset` on every answer, 429 RequestLimitReached past it
(info.description, "Limity API")."""

from __future__ import annotations

import threading
from datetime import date, datetime

from .dates import next_utc_midnight

LIMIT_REACHED = {
    "type": "RequestLimitReached",
    "message": "API request limit reached. See the X-RateLimit-* headers and check out the "
               "API documentation for more details.",
}


class Budget:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: dict[str, tuple[date, int]] = {}

    def reset(self) -> None:
        with self._lock:
            self._used.clear()

    def spend(self, instance: str, limit: int, now: datetime) -> tuple[bool, dict[str, str]]:
        """Count one request; False when the day's budget was already spent. Returns the
        headers the answer carries either way."""
        today = now.date()
        with self._lock:
            day, used = self._used.get(instance, (today, 0))
            if day != today:
                used = 0
            allowed = used < limit
            if allowed:
                used += 1
            self._used[instance] = (today, used)
        return allowed, self.headers(instance, limit, now)

    def headers(self, instance: str, limit: int, now: datetime) -> dict[str, str]:
        """The headers of an answer that spends nothing (a refused sign-in)."""
        return {
            "X-Ratelimit-Limit": str(limit),
            "X-Ratelimit-Remaining": str(max(limit - self.used(instance, now), 0)),
            "X-Ratelimit-Reset": str(int(next_utc_midnight(now).timestamp())),
        }

    def used(self, instance: str, now: datetime) -> int:
        with self._lock:
            day, used = self._used.get(instance, (now.date(), 0))
            return used if day == now.date() else 0

    def set_used(self, instance: str, used: int, now: datetime) -> None:
        with self._lock:
            self._used[instance] = (now.date(), used)
