"""An activity's participants (meeting, event, e-mail), as Raynet keeps them: its owner, its
contact person, and those an edit adds, changes or removes (`participants` of
`POST /{activity}/{id}/`: an item without an id is added, a negative id removes that
participant, a positive id changes it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Instance, Record

KEY = "participants"          # where a record's fields keep them
ATTRIBUTES = ("owner", "role", "person", "company", "lead")


def on_create(record: Record, next_id: Any) -> None:
    """The owner and the contact person (with its company) become the first participants."""
    stored: list[dict[str, Any]] = []
    for name, is_owner in (("owner", True), ("person", False)):
        person_id = record.fields.get(name)
        if isinstance(person_id, int):
            # As the specification's example shows them: the owner FROM, the others unnamed.
            stored.append({"id": next_id(), "owner": is_owner,
                           "role": "FROM" if is_owner else None,
                           "person": person_id, "lead": None,
                           "company": None if is_owner else record.fields.get("company")})
    record.fields[KEY] = stored


class BadParticipants(ValueError):
    pass


def edit(instance: Instance, record: Record, items: Any, next_id: Any) -> None:
    """Worked on a copy, kept only when every item is valid: a refused edit changes nothing."""
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise BadParticipants("participants must be a list of objects")
    stored: list[dict[str, Any]] = [dict(p) for p in record.fields.get(KEY) or []]
    for item in items:
        for name in ("person", "company"):
            value = item.get(name)
            if value is not None and (not isinstance(value, int)
                                      or value not in instance.records[name]):
                raise BadParticipants(f"EntityNotFoundException: no {name} {value}")
        given = item.get("id")
        if given is None:
            if not any(isinstance(item.get(n), int) for n in ("person", "company", "lead")):
                raise BadParticipants("A participant needs a person, a company or a lead")
            stored.append({"id": next_id(), **{n: item.get(n) for n in ATTRIBUTES}})
            stored[-1]["owner"] = bool(stored[-1]["owner"])
            continue
        found = next((p for p in stored if p["id"] == abs(int(given))), None)
        if found is None:
            raise BadParticipants(f"EntityNotFoundException: participant {abs(int(given))}")
        if int(given) < 0:
            stored.remove(found)
        else:
            found.update({n: item[n] for n in ATTRIBUTES if n in item})
    record.fields[KEY] = stored


def shown(instance: Instance, record: Record) -> list[dict[str, Any]]:
    """As a detail shows them: with the name and primary e-mail of each participant."""
    stored = record.fields.get(KEY)
    if stored is None:
        # A record kept from before participants were stored: its owner and contact person.
        stored = [{"id": None, "owner": name == "owner", "role": None, "lead": None,
                   "person": record.fields.get(name), "company": None}
                  for name in ("owner", "person") if isinstance(record.fields.get(name), int)]
    found = []
    for participant in stored:
        person = instance.records["person"].get(participant.get("person") or -1)
        company = instance.records["company"].get(participant.get("company") or -1)
        name = email = None
        if person is not None:
            parts = (person.fields.get("firstName"), person.fields.get("lastName"))
            name = " ".join(p for p in parts if p) or None
            email = (person.fields.get("contactInfo") or {}).get("email")
        elif company is not None:
            name = company.fields.get("name")
        shown_one = {**{n: participant.get(n) for n in ("id", *ATTRIBUTES)},
                     "name": name, "email": email}
        if participant.get("owner"):
            # The owner's participant is whoever owns the activity now.
            shown_one["person"] = record.fields.get("owner")
        found.append(shown_one)
    return found
