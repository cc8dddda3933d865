"""Keeping the simulator's instances across restarts: one JSON file (`--state FILE`).

Without it every start gives new record ids, and a sync server that linked the old ones
would see every record vanish. Kept: instances with their users, records (ext ids, tags,
attachments, relationships), uploads, webhooks and limits, and the id sequence. Not kept:
faults, counters, the request log, the budget spent and queued webhook deliveries.

The file is written whole beside itself and renamed over the old one, so a crash mid-write
leaves the previous state. A file that cannot be read raises `StateFileError`."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .store import Instance, Record, Store, User, Webhook

log = logging.getLogger("raynetsim.persistence")
FORMAT = "raynetsim-state/1"
SAVE_INTERVAL_SECONDS = 2.0


class StateFileError(Exception):
    pass


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_value(v) for v in value]
    return value


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$datetime"}:
            return datetime.fromisoformat(value["$datetime"])
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def dump(store: Store) -> dict[str, Any]:
    with store.lock:
        instances = [{
            "name": i.name, "zone": i.zone.key, "daily_limit": i.daily_limit,
            "users": [asdict(u) for u in i.users.values()],
            "records": [_value(asdict(r)) for rs in i.records.values() for r in rs.values()],
            "uploads": _value(i.uploads),
            "webhooks": [asdict(w) for w in i.webhooks.values()],
        } for i in store.instances.values()]
        return {"format": FORMAT, "next_id": store.following_id, "instances": instances}


def load(store: Store, state: dict[str, Any]) -> None:
    if state.get("format") != FORMAT:
        raise StateFileError(f"not a {FORMAT} file (format {state.get('format')!r})")
    try:
        with store.lock:
            store.reset()
            for data in state["instances"]:
                instance = Instance(name=data["name"], zone=ZoneInfo(data["zone"]),
                                    daily_limit=int(data["daily_limit"]))
                instance.users = {u["email"].lower(): User(**u) for u in data["users"]}
                for raw in data["records"]:
                    record = Record(**_restore(raw))
                    instance.records[record.entity][record.id] = record
                instance.uploads = _restore(data["uploads"])
                instance.webhooks = {w["uuid"]: Webhook(**w) for w in data["webhooks"]}
                store.instances[instance.name] = instance
            store.following_id = int(state["next_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StateFileError(f"the file does not hold a usable state: {exc!r}") from exc


class StateKeeper:
    """Writes the state when it changed, every couple of seconds and at the end."""

    def __init__(self, store: Store, path: str | Path) -> None:
        self.store = store
        self.path = Path(path)
        self._last: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raynetsim-state", daemon=True)

    def load(self) -> int | None:
        """How many records were restored; None when there is no file yet."""
        if not self.path.exists():
            return None
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StateFileError(f"cannot read it: {exc}") from exc
        load(self.store, state)
        self._last = json.dumps(dump(self.store), sort_keys=True)
        return sum(len(rs) for i in self.store.instances.values() for rs in i.records.values())

    def save(self) -> bool:
        text = json.dumps(dump(self.store), sort_keys=True)
        if text == self._last:
            return False
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        self._last = text
        return True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> bool:
        self._stop.set()
        return self.save()

    def _run(self) -> None:
        while not self._stop.wait(SAVE_INTERVAL_SECONDS):
            try:
                self.save()
            except OSError as exc:
                log.warning("raynetsim cannot write its state to %s: %s", self.path, exc)
