"""Control plane for Graph change notifications: `/_control/graph/subscriptions…` and
`/_control/graph/notifications…` (see ewsim/README.md).

What a test of a notification endpoint needs and real Graph only does on its own
schedule: lifecycle events now, expiry now, failing deliveries, counters.
"""

from __future__ import annotations

from typing import Any

from .notifier import DEFAULTS, Notifier, now

LIFECYCLE_EVENTS = {"reauthorizationRequired", "subscriptionRemoved", "missed"}


def _summary(notifier: Notifier) -> list[dict[str, Any]]:
    return [{**sub.json(), "mailbox": sub.mailbox, "kind": sub.kind,
             "folderId": sub.folder_id, "tenantId": sub.tenant_id}
            for sub in notifier.listed()]


def handle(server: Any, method: str, parts: list[str], data: dict[str, Any]) -> Any:
    from ..control import ControlError

    notifier: Notifier = server.graph_notifier
    if parts == ["subscriptions"] and method == "GET":
        return _summary(notifier)
    if parts[0] == "subscriptions" and len(parts) == 3 and method == "POST":
        sub = notifier.get(parts[1])
        if sub is None:
            raise ControlError(404, f"no subscription {parts[1]}")
        action = parts[2]
        if action == "lifecycle":
            event = str(data.get("event", ""))
            if event not in LIFECYCLE_EVENTS:
                raise ControlError(400, f"event must be one of {sorted(LIFECYCLE_EVENTS)}")
            if not notifier.lifecycle(sub, event):
                raise ControlError(409, "the subscription has no lifecycleNotificationUrl")
            if event == "subscriptionRemoved":
                notifier.remove(sub.id)     # Graph has removed it: it sends nothing more
            return {"subscription": sub.id, "event": event, "queued": True}
        if action == "expire":
            with notifier.lock:
                sub.expiration = now()
            notifier.get(sub.id)            # removes it (and counts it) at once
            return {"subscription": sub.id, "expired": True}
    if parts == ["notifications"] and method == "GET":
        return notifier.stats()
    if parts == ["notifications"] and method == "DELETE":
        with notifier.lock:
            notifier.counters.clear()
            notifier.deliveries.clear()
        return notifier.stats()
    if parts == ["notifications", "settings"] and method in ("POST", "PATCH"):
        with notifier.lock:
            for key in DEFAULTS:
                if key in data:
                    notifier.settings[key] = ([float(v) for v in data[key]]
                                              if key == "retry_delays" else float(data[key]))
            return dict(notifier.settings)
    if parts == ["notifications", "fail"] and method == "POST":
        # The next `count` delivery attempts fail as if the endpoint were unreachable
        # (-1: until cleared with count 0).
        with notifier.lock:
            notifier.fail_next = int(data.get("count", 1))
            return {"fail_next": notifier.fail_next}
    raise ControlError(404, f"unknown control endpoint {method} /_control/graph/"
                            f"{'/'.join(parts)}")
