"""Webhook deliveries as Raynet makes them: one queue per URL, at most one event a second to
each URL, a failed delivery retried (after a growing pause) until it is taken, 10 s for the
receiver to answer, and a URL that has failed for 7 days (on the simulator's clock) removed
with its queue. A delivery thread does the sending; `flush()` sends everything due at once,
for tests."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .clock import Clock

log = logging.getLogger("raynetsim.webhooks")
ANSWER_WITHIN_SECONDS = 10
RETRY_PAUSES = (5, 30, 120, 600, 3600)
GIVE_UP_AFTER = timedelta(days=7)


@dataclass
class Delivery:
    url: str
    token: str | None
    payload: dict[str, Any]
    attempts: int = 0
    not_before: float = 0.0
    in_flight: bool = False      # being sent by the thread or by flush(), never by both


@dataclass
class _Queue:
    pending: deque[Delivery] = field(default_factory=deque)
    last_sent: float = 0.0


class WebhookSender:
    def __init__(self, clock: Clock, give_up: Callable[[str], None],
                 per_url_interval: float = 1.0) -> None:
        self.clock = clock
        self.give_up = give_up          # removes the webhooks of a URL that kept failing
        self.per_url_interval = per_url_interval
        self._failing_since: dict[str, datetime] = {}
        self._lock = threading.Condition()
        self._queues: dict[str, _Queue] = {}
        self.delivered: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self._stopped = False
        self.paused = False          # tests: only flush() sends
        self._thread: threading.Thread | None = None

    def enqueue(self, url: str, token: str | None, payload: dict[str, Any]) -> None:
        with self._lock:
            self._queues.setdefault(url, _Queue()).pending.append(
                Delivery(url=url, token=token, payload=payload))
            self._lock.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="raynetsim-webhooks",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify_all()

    def reset(self) -> None:
        with self._lock:
            self._queues.clear()
            self._failing_since.clear()
            self.delivered.clear()
            self.failures.clear()

    def pending(self) -> int:
        with self._lock:
            return sum(len(q.pending) for q in self._queues.values())

    def flush(self) -> int:
        """Send every queued delivery now, ignoring the pace and retry pauses (one attempt
        each); returns how many were taken by their receivers."""
        with self._lock:
            due = [d for q in self._queues.values() for d in q.pending if not d.in_flight]
            for delivery in due:
                delivery.in_flight = True
        taken = 0
        for delivery in due:
            if self._send(delivery):
                taken += 1
                self._drop(delivery)
            else:
                with self._lock:
                    delivery.in_flight = False
        with self._lock:
            # A delivery the thread has under way is finished before flush() returns, so a
            # test sees every change delivered or pending, none half-way.
            self._lock.wait_for(lambda: not any(
                d.in_flight for q in self._queues.values() for d in q.pending),
                timeout=ANSWER_WITHIN_SECONDS + 5)
        return taken

    def _drop(self, delivery: Delivery) -> None:
        with self._lock:
            delivery.in_flight = False
            queue = self._queues.get(delivery.url)
            if queue and delivery in queue.pending:
                queue.pending.remove(delivery)
            self._lock.notify_all()

    def _next_due(self, now: float) -> Delivery | None:
        for queue in self._queues.values():
            if queue.pending and now - queue.last_sent >= self.per_url_interval:
                head = queue.pending[0]
                if head.not_before <= now and not head.in_flight:
                    queue.last_sent = now
                    head.in_flight = True
                    return head
        return None

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                delivery = None if self.paused else self._next_due(time.monotonic())
                if delivery is None:
                    self._lock.wait(0.1)
                    continue
            if self._send(delivery):
                self._drop(delivery)
            else:
                pause = RETRY_PAUSES[min(delivery.attempts - 1, len(RETRY_PAUSES) - 1)]
                with self._lock:
                    delivery.not_before = time.monotonic() + pause
                    delivery.in_flight = False
                    self._lock.notify_all()

    def _send(self, delivery: Delivery) -> bool:
        delivery.attempts += 1
        headers = {"Content-Type": "application/json"}
        if delivery.token:
            headers["X-RAYNETCRM-Token"] = delivery.token
        request = urllib.request.Request(delivery.url, json.dumps(delivery.payload).encode(),
                                         headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=ANSWER_WITHIN_SECONDS) as response:
                ok = 200 <= response.status < 300
        except (urllib.error.URLError, OSError) as exc:
            ok = False
            log.info("webhook delivery to %s failed: %s", delivery.url, exc)
        record = {"url": delivery.url, "payload": delivery.payload,
                  "attempt": delivery.attempts, "sent_at": time.time()}
        now = self.clock.now()
        with self._lock:
            (self.delivered if ok else self.failures).append(record)
            if ok:
                self._failing_since.pop(delivery.url, None)
                return True
            since = self._failing_since.setdefault(delivery.url, now)
            hopeless = now - since >= GIVE_UP_AFTER
            if hopeless:
                self._queues.pop(delivery.url, None)
                self._failing_since.pop(delivery.url, None)
                self._lock.notify_all()
        if hopeless:
            log.info("webhook URL %s failed for 7 days: removed", delivery.url)
            self.give_up(delivery.url)
        return False


def payload(event: str, author: str, instance: str, entity: str, entity_id: int,
            ext_ids: list[str], created_at: str) -> dict[str, Any]:
    """The body of one delivery (reference/raynet/README.md, tag "Webhook")."""
    return {"eventId": uuid.uuid4().hex, "createdAt": created_at, "type": event,
            "author": author, "source": "API", "instanceName": instance,
            "data": {"entityName": entity, "entityId": entity_id, "extIds": ext_ids}}
