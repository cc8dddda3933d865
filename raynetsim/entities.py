"""Records in Raynet's JSON shapes: what a create or an edit stores, and what a detail or a
list shows (references as objects, `rowInfo.*` flat keys, dates still as datetimes here;
formatting.py writes them in the asked format)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import participants, spec
from .dates import parse
from .store import ACTIVITIES, Instance, Record

DATE_FIELDS = {"scheduledFrom", "scheduledTill", "completed"}
PERSON_REFERENCES = {"owner", "person"}
ACTIVITY_DEFAULTS = {"status": "SCHEDULED", "personal": False}
# Kept by the simulator itself, never blanked from the example.
OWN_KEYS = {"id", "tags", "attachments", "relationships", "primaryRelationship",
            "participants", "_version"}


class InvalidInput(ValueError):
    pass


def check_required(entity: str, body: dict[str, Any]) -> None:
    missing = [name for name in spec.required_on_create(entity) if body.get(name) in (None, "")]
    if missing:
        raise InvalidInput(f"Missing required attribute(s): {', '.join(missing)}")


def stored_fields(instance: Instance, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    """The attributes of a create or an edit as the store keeps them."""
    fields: dict[str, Any] = {}
    for name, value in body.items():
        if name in ("tags", "extIds", "relationship", "participants"):
            continue
        if name in DATE_FIELDS and entity in ACTIVITIES and isinstance(value, str):
            fields[name] = parse(value, instance.zone)
        else:
            fields[name] = value
    return fields


def merge(record: Record, fields: dict[str, Any]) -> None:
    """An edit changes only the attributes it names; nested objects keep what it omits."""
    for name, value in fields.items():
        current = record.fields.get(name)
        if isinstance(current, dict) and isinstance(value, dict):
            current.update(value)
        else:
            record.fields[name] = value


def full_name(record: Record | None) -> str | None:
    if record is None:
        return None
    parts = (record.fields.get("firstName"), record.fields.get("lastName"))
    return " ".join(p for p in parts if p) or None


def _reference(instance: Instance, name: str, value: Any, entity: str) -> Any:
    if not isinstance(value, int):
        return value
    if name in PERSON_REFERENCES:
        return {"id": value, "fullName": full_name(instance.records["person"].get(value))}
    if name == "company":
        company = instance.records["company"].get(value)
        return {"id": value, "name": company.fields.get("name") if company else None}
    if name == "category" and entity in ACTIVITIES:
        category = instance.records["activityCategory"].get(value)
        return {"id": value, "value": category.fields.get("code01") if category else None}
    if name == "category" or name.startswith(("personClassification", "companyClassification")):
        return {"id": value, "value": None}
    return value


def row_info(record: Record) -> dict[str, Any]:
    return {
        "rowInfo.createdAt": record.created_at,
        "rowInfo.createdBy": record.created_by,
        "rowInfo.updatedAt": record.updated_at,
        "rowInfo.updatedBy": record.updated_by,
        "rowInfo.rowAccess": record.row_access,
        "rowInfo.rowState": None,
    }


def _blank(entity: str) -> dict[str, Any]:
    """Every attribute of the specification's example detail, empty: a record shows the
    whole shape, with null where nothing was set (as Raynet answers)."""
    blank: dict[str, Any] = {}
    for name, example in spec.detail_example(entity).items():
        if name in OWN_KEYS or name.startswith("rowInfo."):
            continue
        if isinstance(example, list):
            blank[name] = []
        elif isinstance(example, dict) and "id" not in example and name != "customFields":
            blank[name] = dict.fromkeys(example)
        else:
            blank[name] = None
    if entity in ACTIVITIES:
        blank.update(ACTIVITY_DEFAULTS)
    return blank


def present(instance: Instance, record: Record, view: str | None = None) -> dict[str, Any]:
    if view == "rowInfo":
        return {"id": record.id, **row_info(record),
                "rowInfo.lastModifiedAt": last_modified(record), "_version": record.version}
    shown: dict[str, Any] = {"id": record.id, **_blank(record.entity)}
    for name, value in record.fields.items():
        if isinstance(shown.get(name), dict) and isinstance(value, dict):
            shown[name] = {**shown[name], **value}
        else:
            shown[name] = _reference(instance, name, value, record.entity)
    if record.entity == "activityCategory":
        return shown
    if record.entity == "person":
        shown["relationships"] = [_relationship(instance, r) for r in record.relationships]
        primary = next((r for r in record.relationships if r["primary"]), None)
        shown["primaryRelationship"] = _relationship(instance, primary) if primary else None
    if record.entity in ACTIVITIES:
        shown["participants"] = participants.shown(instance, record)
    shown["tags"] = list(record.tags)
    shown["extIds"] = list(record.ext_ids)
    shown["attachments"] = [dict(a) for a in record.attachments]
    shown["_version"] = record.version
    shown.update(row_info(record))
    return shown


def last_modified(record: Record) -> datetime:
    return max(record.created_at, record.updated_at)


def _relationship(instance: Instance, relationship: dict[str, Any]) -> dict[str, Any]:
    return {"id": relationship["id"], "type": relationship.get("type"),
            "notice": relationship.get("notice"), "primary": relationship["primary"],
            "company": _reference(instance, "company", relationship["company"], "person")}
