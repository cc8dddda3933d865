"""An activity's participants, as Raynet keeps them: the owner (role FROM), the contact
person named on create (`person` of the insert DTO), and those an edit's `participants`
array adds, changes or removes (MeetingEditDto: no id adds one, a negative id removes the
participant of that id, a positive id changes it)."""

from __future__ import annotations

from typing import Any

from .store import Instance, Record, Store

KEY = "participants"
ATTRIBUTES = ("owner", "role", "person", "company", "lead")


class BadParticipants(ValueError):
    pass


def on_create(store: Store, record: Record) -> None:
    """The insert DTO's `person` is the activity's first participant."""
    person = record.fields.get("person")
    record.fields[KEY] = ([{"id": store.next_id(), "owner": False, "role": "TO",
                            "person": person, "company": None, "lead": None}]
                          if isinstance(person, int) else [])


def apply_edit(store: Store, instance: Instance, record: Record, items: Any) -> None:
    if not isinstance(items, list):
        raise BadParticipants("participants: an array expected")
    # Worked on a copy, kept only when every item is valid: a refused edit changes nothing.
    stored = [dict(p) for p in _stored(record)]
    for item in items:
        if not isinstance(item, dict):
            raise BadParticipants("participants: objects expected")
        ident = item.get("id")
        if isinstance(ident, int) and ident < 0:
            stored[:] = [p for p in stored if p["id"] != -ident]
            continue
        person = item.get("person")
        if person is not None and (not isinstance(person, int)
                                   or person not in instance.records["person"]):
            raise BadParticipants(f"participants: no person {person}")
        if isinstance(ident, int) and ident > 0:
            found = next((p for p in stored if p["id"] == ident), None)
            if found is None:
                raise BadParticipants(f"participants: no participant {ident}")
            found.update({k: item[k] for k in ATTRIBUTES if k in item})
        else:
            stored.append({"id": store.next_id(), **{k: item.get(k) for k in ATTRIBUTES},
                           "owner": bool(item.get("owner"))})
    record.fields[KEY] = stored


def shown(instance: Instance, record: Record, full_name: Any) -> list[dict[str, Any]]:
    """The owner first (as Raynet shows it, role FROM), then the others."""
    found = []
    owner = record.fields.get("owner")
    if isinstance(owner, int):
        found.append({"id": owner, "owner": True, "role": "FROM",
                      "name": full_name(instance.records["person"].get(owner)),
                      "person": owner, "company": record.fields.get("company"), "lead": None})
    for participant in _stored(record):
        person = participant.get("person")
        found.append({**{k: participant.get(k) for k in ATTRIBUTES}, "id": participant["id"],
                      "name": full_name(instance.records["person"].get(person))
                      if isinstance(person, int) else None})
    return found


def _stored(record: Record) -> list[dict[str, Any]]:
    stored = record.fields.get(KEY)
    if stored is None:      # a record seeded through the control API: its contact person
        person = record.fields.get("person")
        return [{"id": person, "owner": False, "role": None, "person": person,
                 "company": None, "lead": None}] if isinstance(person, int) else []
    return list(stored)
