"""Delivery of Graph change and lifecycle notifications, from background threads.

A store change is only queued here (the store calls `on_change` under its lock, inside the
request that made it); one sender thread per notification URL takes whatever piled up
(after a short batching window) and POSTs it as one `{"value": [...]}`, as Graph does.
A failed POST (non-2xx, timeout, refused) is retried after each of `retry_delays`; then
the notifications are dropped and each subscription concerned gets a `missed` lifecycle
event on its lifecycleNotificationUrl. Expired subscriptions are removed by a sweeper.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def now() -> dt.datetime:
    """Exact time (the store's `now` drops microseconds; expiry is compared to the
    client's own, precise expirationDateTime)."""
    return dt.datetime.now(dt.UTC)


MAX_PER_POST = 100              # notifications in one POST at most
DEFAULTS: dict[str, Any] = {
    "batch_window_s": 0.05,     # wait this long after the first queued change for more
    "timeout_s": 3.0,           # Graph expects an answer within 3 seconds
    "retry_delays": [0.5, 2.0, 5.0],   # Graph retries for hours; tests shorten this
    "sweep_s": 0.2,             # how often expired subscriptions are looked for
}
TYPES = {"messages": "#Microsoft.Graph.Message", "events": "#Microsoft.Graph.Event",
         "contacts": "#Microsoft.Graph.Contact"}
RESOURCE_SEGMENT = {"messages": "Messages", "events": "Events", "contacts": "Contacts"}
CHANGE_TYPES = {"create": "created", "update": "updated", "read": "updated",
                "delete": "deleted"}


def fmt_graph_dt(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


@dataclass
class Subscription:
    id: str
    mailbox: str
    kind: str                       # messages | events | contacts
    folder_id: str | None           # None: every folder of that kind in the mailbox
    resource: str                   # as the client wrote it
    change_types: set[str]
    notification_url: str
    expiration: dt.datetime
    owner: str                      # app client id or user address (who may see it)
    application_id: str
    tenant_id: str
    client_state: str | None = None
    lifecycle_url: str | None = None
    tls_version: str = "v1_2"
    immutable_ids: bool = False
    change_type_text: str = ""      # as the client wrote it (Graph echoes it)
    created: dt.datetime = field(default_factory=now)

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "resource": self.resource,
                "applicationId": self.application_id,
                "changeType": self.change_type_text or ",".join(sorted(self.change_types)),
                "clientState": self.client_state, "notificationUrl": self.notification_url,
                "notificationQueryOptions": None,
                "lifecycleNotificationUrl": self.lifecycle_url,
                "expirationDateTime": fmt_graph_dt(self.expiration),
                "creatorId": self.owner.partition(":")[2], "includeResourceData": None,
                "latestSupportedTlsVersion": self.tls_version,
                "encryptionCertificate": None, "encryptionCertificateId": None,
                "notificationUrlAppId": None}

    def base(self) -> dict[str, Any]:
        return {"subscriptionId": self.id,
                "subscriptionExpirationDateTime": fmt_graph_dt(self.expiration),
                "clientState": self.client_state, "tenantId": self.tenant_id}


class _Sender:
    """The queue and thread of one notification URL."""

    def __init__(self) -> None:
        self.pending: list[tuple[Subscription, dict[str, Any]]] = []
        self.thread: threading.Thread | None = None


class Notifier:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.closed = False
        self.subscriptions: dict[str, Subscription] = {}
        self.senders: dict[tuple[str, bool], _Sender] = {}   # (url, lifecycle?) -> queue
        self.counters: Counter[str] = Counter()
        self.settings: dict[str, Any] = dict(DEFAULTS)
        self.fail_next = 0          # control-plane fault: this many delivery attempts fail
        self.deliveries: list[dict[str, Any]] = []   # the last POSTs, for the control plane
        self.generation = 0
        self._sweeper = threading.Thread(target=self._sweep, name="ewsim-graph-sweep",
                                         daemon=True)
        self._sweeper.start()

    # --- lifetime -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every subscription and queued notification (sender threads finish idle)."""
        with self.lock:
            self.generation += 1
            self.subscriptions.clear()
            for sender in self.senders.values():
                sender.pending.clear()
            self.counters.clear()
            self.settings = dict(DEFAULTS)
            self.fail_next = 0
            self.deliveries.clear()
            self.wake.notify_all()
        self.attach()

    def attach(self) -> None:
        """(Re)register with the store; Store.reset empties its listener list."""
        with self.store.lock:
            if self.on_change not in self.store.listeners:
                self.store.listeners.append(self.on_change)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.wake.notify_all()

    # --- subscriptions ------------------------------------------------------------------------
    def add(self, sub: Subscription) -> None:
        with self.lock:
            self.subscriptions[sub.id] = sub

    def get(self, sub_id: str) -> Subscription | None:
        with self.lock:
            sub = self.subscriptions.get(sub_id)
            if sub is not None and sub.expiration <= now():
                del self.subscriptions[sub_id]
                self.counters["expired"] += 1
                return None
            return sub

    def remove(self, sub_id: str) -> Subscription | None:
        with self.lock:
            return self.subscriptions.pop(sub_id, None)

    def listed(self) -> list[Subscription]:
        with self.lock:
            return [s for s in self.subscriptions.values() if s.expiration > now()]

    # --- changes (called by the store, under its lock: only queue) -----------------------------
    def on_change(self, event: dict[str, Any]) -> None:
        change = CHANGE_TYPES.get(event["kind"])
        if change is None:
            return
        folder = self.store.folders.get(event["folder_id"])
        if folder is None:
            return
        kind = folder_kind(folder.folder_class)
        item = self.store.items.get(event["item_id"])
        stamp = now()
        with self.lock:
            if not self.subscriptions:
                return
            for sub in self.subscriptions.values():
                if (sub.mailbox != event["mailbox"] or sub.kind != kind
                        or change not in sub.change_types or sub.expiration <= stamp
                        or (sub.folder_id is not None and sub.folder_id != folder.id)):
                    continue
                item_id = event["item_id"]
                if sub.immutable_ids:
                    item_id = self.store.immutable_of.get(item_id, item_id)
                path = f"Users/{sub.mailbox}/{RESOURCE_SEGMENT[kind]}/{item_id}"
                resource_data: dict[str, Any] = {"@odata.type": TYPES[kind],
                                                 "@odata.id": path, "id": item_id}
                if item is not None and change != "deleted":
                    resource_data["@odata.etag"] = f'W/"{item.changekey}"'
                note = {**sub.base(), "changeType": change, "resource": path,
                        "resourceData": resource_data}
                self._queue(sub, note)

    def lifecycle(self, sub: Subscription, event: str) -> bool:
        """Queue a lifecycle event; False when the subscription has no lifecycle URL."""
        if not sub.lifecycle_url:
            return False
        note = {**sub.base(), "lifecycleEvent": event}
        with self.lock:
            self._queue(sub, note, sub.lifecycle_url)
        return True

    def _queue(self, sub: Subscription, note: dict[str, Any], url: str | None = None) -> None:
        # Lifecycle events never share a POST with change notifications, even when both
        # URLs are the same: separate queues.
        lifecycle = url is not None
        url = url or sub.notification_url
        sender = self.senders.get((url, lifecycle))
        if sender is None:
            sender = self.senders[(url, lifecycle)] = _Sender()
        sender.pending.append((sub, note))
        if sender.thread is None or not sender.thread.is_alive():
            sender.thread = threading.Thread(target=self._run, args=(url, sender),
                                             name="ewsim-graph-notify", daemon=True)
            sender.thread.start()
        self.wake.notify_all()

    # --- the sender threads -------------------------------------------------------------------
    def _run(self, url: str, sender: _Sender) -> None:
        while True:
            with self.lock:
                if not self.wake.wait_for(lambda: sender.pending or self.closed, 30.0):
                    if sender.thread is threading.current_thread():
                        sender.thread = None
                    return              # idle: the next change starts a new thread
                if self.closed:
                    return
                window = float(self.settings["batch_window_s"])
            if window > 0:
                threading.Event().wait(window)   # let a burst pile up into one POST
            with self.lock:
                batch = sender.pending[:MAX_PER_POST]
                del sender.pending[:MAX_PER_POST]
                generation = self.generation
            if batch:
                self._deliver(url, batch, generation)

    def _deliver(self, url: str, batch: list[tuple[Subscription, dict[str, Any]]],
                 generation: int) -> None:
        body = json.dumps({"value": [note for _, note in batch]}).encode()
        lifecycle = "lifecycleEvent" in batch[0][1]
        with self.lock:
            delays = [float(d) for d in self.settings["retry_delays"]]
        for attempt in range(len(delays) + 1):
            if attempt:
                threading.Event().wait(delays[attempt - 1])
            with self.lock:
                if self.generation != generation or self.closed:
                    return              # reset meanwhile: these notifications are gone
            status, error = self._post(url, body)
            entry = {"url": url, "status": status, "error": error, "attempt": attempt + 1,
                     "count": len(batch), "lifecycle": lifecycle}
            with self.lock:
                if self.generation != generation:
                    return              # reset while this POST was under way: not this test's
                self.deliveries.append(entry)
                del self.deliveries[:-200]
                self.counters["posts"] += 1
                if status is not None and 200 <= status < 300:
                    self.counters["lifecycle_sent" if lifecycle else "sent"] += len(batch)
                    return
                self.counters["failed_posts"] += 1
        with self.lock:
            self.counters["lifecycle_dropped" if lifecycle else "dropped"] += len(batch)
        if lifecycle:
            return                      # a lost lifecycle event is not reported again
        seen: set[str] = set()
        for sub, _ in batch:
            if sub.id not in seen:
                seen.add(sub.id)
                self.lifecycle(sub, "missed")

    def _post(self, url: str, body: bytes) -> tuple[int | None, str | None]:
        with self.lock:
            if self.fail_next:
                if self.fail_next > 0:
                    self.fail_next -= 1
                return None, "injected failure"
            timeout = float(self.settings["timeout_s"])
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return response.status, None
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (OSError, ValueError) as exc:    # refused, reset, timeout, bad URL
            return None, repr(exc)

    # --- expiry -------------------------------------------------------------------------------
    def _sweep(self) -> None:
        while True:
            with self.lock:
                if self.wake.wait_for(lambda: self.closed, float(self.settings["sweep_s"])):
                    return
                stamp = now()
                for sub_id in [k for k, s in self.subscriptions.items()
                               if s.expiration <= stamp]:
                    del self.subscriptions[sub_id]
                    self.counters["expired"] += 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"counters": dict(self.counters), "settings": dict(self.settings),
                    "fail_next": self.fail_next,
                    "queued": sum(len(s.pending) for s in self.senders.values()),
                    "deliveries": list(self.deliveries[-50:])}


def folder_kind(folder_class: str | None) -> str:
    if folder_class == "IPF.Contact":
        return "contacts"
    if folder_class == "IPF.Appointment":
        return "events"
    if folder_class in (None, "IPF.Note"):
        return "messages"
    return "other"
