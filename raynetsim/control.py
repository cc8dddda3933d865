"""Control plane: JSON under /_control/ for tests and the demo, acting from outside the API:
instances and their users, records made "by someone else", faults, the clock, the budget,
counters, the request log and webhook deliveries."""

from __future__ import annotations

from typing import Any

from .store import DEFAULT_ZONE, ENTITIES


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def handle(server: Any, method: str, path: str, data: dict[str, Any]) -> Any:
    route = "/".join([p for p in path.split("/") if p][1:])
    store = server.store
    now = server.clock.now()
    if (method, route) == ("POST", "reset"):
        server.reset()
        return {"ok": True}
    if (method, route) == ("POST", "instances"):
        with store.lock:
            instance = store.add_instance(data["name"], data.get("zone", DEFAULT_ZONE),
                                          int(data.get("daily_limit", 24_000)))
            users = [store.add_user(instance, u["email"], u["api_key"],
                                    u.get("full_name", u["email"]), now)
                     for u in data.get("users", ())]
        return {"name": instance.name, "users": [{"email": u.email, "person_id": u.person_id}
                                                 for u in users]}
    if (method, route) == ("POST", "records"):
        return _seed_record(server, data, now)
    if (method, route) == ("POST", "faults"):
        try:
            fault = server.faults.add(data.pop("kind", ""), data.pop("path", ".*"),
                                      int(data.pop("count", 1)), **data)
        except ValueError as exc:
            raise ControlError(400, str(exc)) from exc
        return fault.as_dict()
    if (method, route) == ("DELETE", "faults"):
        server.faults.clear()
        return {"ok": True}
    if (method, route) == ("POST", "clock"):
        return {"now": server.clock.advance(float(data.get("advance_seconds", 0))).isoformat()}
    if (method, route) == ("POST", "budget"):
        instance = _instance(server, data)
        if "daily_limit" in data:
            instance.daily_limit = int(data["daily_limit"])
        if "used" in data:
            server.budget.set_used(instance.name, int(data["used"]), now)
        return {"limit": instance.daily_limit, "used": server.budget.used(instance.name, now)}
    if (method, route) == ("GET", "counters"):
        return dict(server.counters)
    if (method, route) == ("GET", "concurrency"):
        return {"in_flight": server.in_flight, "peak": server.peak_in_flight}
    if (method, route) == ("POST", "concurrency/reset"):
        with store.lock:
            server.peak_in_flight = server.in_flight
        return {"in_flight": server.in_flight, "peak": server.peak_in_flight}
    if (method, route) == ("GET", "requests"):
        return list(server.request_log)
    if (method, route) == ("GET", "blocked"):
        return server.guard.blocked()
    if (method, route) == ("POST", "webhooks/flush"):
        return {"delivered": server.webhooks.flush(), "pending": server.webhooks.pending()}
    if (method, route) == ("GET", "webhooks"):
        return {"delivered": list(server.webhooks.delivered),
                "failures": list(server.webhooks.failures),
                "pending": server.webhooks.pending()}
    if (method, route) == ("POST", "settings"):
        if "latency_ms" in data:
            server.latency_ms = int(data["latency_ms"])
        if "webhook_interval_seconds" in data:
            server.webhooks.per_url_interval = float(data["webhook_interval_seconds"])
        if "webhooks_paused" in data:
            server.webhooks.paused = bool(data["webhooks_paused"])
        return {"latency_ms": server.latency_ms, "webhooks_paused": server.webhooks.paused,
                "webhook_interval_seconds": server.webhooks.per_url_interval}
    raise ControlError(404, f"no control route {method} {route}")


def _instance(server: Any, data: dict[str, Any]) -> Any:
    instance = server.store.instances.get(data.get("instance", ""))
    if instance is None:
        raise ControlError(404, f"no instance {data.get('instance')!r}")
    return instance


def _seed_record(server: Any, data: dict[str, Any], now: Any) -> dict[str, Any]:
    """A record made in Raynet by someone else (another user, the web app): it counts on no
    budget and is announced to the webhooks like any change."""
    from .entities import stored_fields

    instance = _instance(server, data)
    entity = data.get("entity")
    if entity not in ENTITIES:
        raise ControlError(400, f"entity must be one of {ENTITIES}")
    author = data.get("by", "someone@example.com")
    with server.store.lock:
        record = server.store.create(instance, entity,
                                     stored_fields(instance, entity, data.get("fields", {})),
                                     now, author)
        record.ext_ids = list(data.get("extIds", ()))
        record.tags = list(data.get("tags", ()))
    server.announce(instance.name, author,
                    [("record.created", entity, record.id, list(record.ext_ids))])
    return {"id": record.id}
