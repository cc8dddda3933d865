"""A built-in store's person as the engine's contact record, both ways: which columns hold
which synced field, and how a record's values are written onto a person."""

from __future__ import annotations

import hashlib
from typing import Any

from crm.models import ADDRESS_KINDS, ADDRESS_PARTS, PHONE_FIELDS, Person
from engine.records import ContactRecord, PostalAddress

PLAIN_FIELDS = ("title", "first_name", "middle_name", "last_name", "suffix", "job_title",
                "department", "web_page", "email1", "email2", "email3", *PHONE_FIELDS, "note")
# How the record's address parts are called on Person ("business_postal_code"...).
ADDRESS_FIELDS = {f"{kind}_address": kind for kind in ADDRESS_KINDS}


def photo_token(photo: bytes | None) -> str:
    return hashlib.sha256(photo).hexdigest()[:32] if photo else ""


def person_record(person: Person, company: str) -> ContactRecord:
    values: dict[str, Any] = {name: getattr(person, name) for name in PLAIN_FIELDS}
    for field, prefix in ADDRESS_FIELDS.items():
        values[field] = PostalAddress(*(getattr(person, f"{prefix}_{part}")
                                        for part in ADDRESS_PARTS))
    return ContactRecord(**values, display_name="", company=company,
                         photo_token=photo_token(person.photo))


def apply_record(person: Person, record: ContactRecord, fields: frozenset[str],
                 warnings: list[str]) -> None:
    """Write `fields` of the record onto the person (not saved), values cut to the columns."""
    for name in PLAIN_FIELDS:
        if name in fields:
            setattr(person, name, fit(Person, name, getattr(record, name) or "", warnings))
    for field, prefix in ADDRESS_FIELDS.items():
        if field in fields:
            address: PostalAddress = getattr(record, field)
            for part in ADDRESS_PARTS:
                name = f"{prefix}_{part}"
                setattr(person, name, fit(Person, name, getattr(address, part), warnings))


def all_fields() -> frozenset[str]:
    return frozenset(PLAIN_FIELDS) | frozenset(ADDRESS_FIELDS)


def person_columns(fields: frozenset[str]) -> list[str]:
    """The Person columns apply_record() writes for these synced fields."""
    columns = [name for name in PLAIN_FIELDS if name in fields]
    for field, prefix in ADDRESS_FIELDS.items():
        if field in fields:
            columns += [f"{prefix}_{part}" for part in ADDRESS_PARTS]
    return columns


def fit(model: Any, name: str, value: str, warnings: list[str]) -> str:
    """Cut a value to the CRM's column and say so: a too-long value must not fail the item."""
    limit = model._meta.get_field(name).max_length
    value = value or ""
    if limit and len(value) > limit:
        verbose = model._meta.get_field(name).verbose_name
        warnings.append(f"{verbose} was {len(value)} characters long; the CRM keeps {limit}.")
        return value[:limit]
    return value


def image_type(data: bytes) -> str:
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"
