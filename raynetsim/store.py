"""Instances and their records. One Raynet instance (`X-Instance-Name`) has its API users,
its records per entity, the uploaded files and the registered webhooks; instances share
nothing but the id sequence, which keeps ids unique across the whole simulator."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from . import participants

ENTITIES = ("person", "company", "meeting", "event", "email", "activityCategory")
ACTIVITIES = ("meeting", "event", "email")
DEFAULT_ZONE = "Europe/Prague"
EXT_IDS_PER_RECORD = 10     # tag "Externí identifikátor": up to 10 per record


@dataclass
class User:
    email: str
    api_key: str
    person_id: int          # the API user is also a person (owners are persons)
    full_name: str


@dataclass
class Record:
    id: int
    entity: str
    fields: dict[str, Any]
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    ext_ids: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    relationships: list[dict[str, Any]] = field(default_factory=list)
    row_access: str | None = None
    version: int = 1             # `_version`: one more with every change

    def touch(self, moment: datetime, by: str) -> None:
        self.updated_at = moment
        self.updated_by = by
        self.version += 1


@dataclass
class Webhook:
    uuid: str
    url: str
    secret_token: str | None
    events: list[str]


@dataclass
class Instance:
    name: str
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_ZONE))
    users: dict[str, User] = field(default_factory=dict)
    records: dict[str, dict[int, Record]] = field(
        default_factory=lambda: {entity: {} for entity in ENTITIES})
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    daily_limit: int = 24_000

    def by_ext_id(self, entity: str, ext_id: str) -> Record | None:
        return next((r for r in self.records[entity].values() if ext_id in r.ext_ids), None)


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.instances: dict[str, Instance] = {}
        self.following_id = 1        # ids are unique across instances, as persistence keeps

    def next_id(self) -> int:
        with self.lock:
            self.following_id += 1
            return self.following_id - 1

    def reset(self) -> None:
        with self.lock:
            self.instances.clear()
            self.following_id = 1

    def add_instance(self, name: str, zone: str = DEFAULT_ZONE,
                     daily_limit: int = 24_000) -> Instance:
        with self.lock:
            instance = Instance(name=name, zone=ZoneInfo(zone), daily_limit=daily_limit)
            self.instances[name] = instance
            return instance

    def add_user(self, instance: Instance, email: str, api_key: str, full_name: str,
                 moment: datetime) -> User:
        """An API user, with the person record Raynet keeps for every user."""
        with self.lock:
            first, _, last = full_name.rpartition(" ")
            person = self.create(instance, "person", {"firstName": first, "lastName": last},
                                 moment, email)
            # The person shows its user account (filterable as `userAccount-id`), which
            # tells the CRM's users apart from its contacts; numbered as its person, so that
            # no id is taken from the records' sequence.
            person.fields.update(activeUserAccount=True,
                                 userAccount={"id": person.id, "username": email})
            user = User(email=email, api_key=api_key, person_id=person.id,
                        full_name=full_name)
            instance.users[email.lower()] = user
            return user

    def create(self, instance: Instance, entity: str, fields: dict[str, Any],
               moment: datetime, by: str) -> Record:
        record = Record(id=self.next_id(), entity=entity, fields=fields, created_at=moment,
                        created_by=by, updated_at=moment, updated_by=by)
        if entity in ACTIVITIES:
            participants.on_create(record, self.next_id)
        instance.records[entity][record.id] = record
        return record
