"""A built-in store's person as the engine's contact record, both ways: which columns hold
which synced field, how a record's values are written onto a person, and its companies."""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import IntegrityError, transaction

from crm.models import ADDRESS_KINDS, ADDRESS_PARTS, PHONE_FIELDS, Company, Person, PersonCompany
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


def set_first_company(organization_id: int, person: Person, name: str) -> bool:
    """Make `name` the person's first company; whether its links changed (which bumps
    the person's revision)."""
    current = PersonCompany.objects.filter(person=person).order_by("id").first()
    if not name.strip():
        if current is not None:
            current.delete()
        return current is not None
    company_id = Company.find_or_create_by_name(organization_id, name[:255]).pk
    if current is not None and current.company_id == company_id:
        return False
    if current is not None:
        current.delete()
    PersonCompany.objects.get_or_create(person=person, company_id=company_id)
    return True


def company_ids(organization_id: int, names: dict[str, str]) -> dict[str, int]:
    """Company ids by name key, creating the missing companies (one query for those that
    exist)."""
    found = dict(Company.objects.filter(organization_id=organization_id,
                                        name_key__in=list(names))
                 .values_list("name_key", "pk"))
    missing = [Company(organization_id=organization_id, name=name.strip(), name_key=key)
               for key, name in names.items() if key not in found]
    if len(missing) > 1:
        try:
            with transaction.atomic():
                # Tracked bulk insert; save() is bypassed, so name_key is set above.
                found.update((c.name_key, c.pk) for c in Company.objects.bulk_create(missing))
                return found
        except IntegrityError:
            pass   # another writer created one of them meanwhile: one by one, below
    for key, name in names.items():
        if key not in found:
            found[key] = Company.find_or_create_by_name(organization_id, name[:255]).pk
    return found
