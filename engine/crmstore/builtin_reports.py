"""Built-in records as the portal's reports show them: summaries, the columns' labels, and the
records' pages in the admin (the built-in store's own user interface)."""

from __future__ import annotations

from collections.abc import Sequence

from django.urls import NoReverseMatch, reverse
from django.utils.text import capfirst

from crm.models import ADDRESS_KINDS, ADDRESS_PARTS, Event, Person, PersonCompany
from engine.crmstore.base import RecordSummary
from engine.crmstore.builtin_events import event_record
from engine.crmstore.builtin_persons import PLAIN_FIELDS, person_record
from engine.records import Kind

ADMIN_PAGE = {Kind.CONTACTS: "admin:crm_person_change", Kind.CALENDAR: "admin:crm_event_change",
              Kind.MAIL: "admin:crm_email_change"}


def summaries(organization_id: int, kind: Kind, keys: Sequence[str]
              ) -> dict[str, RecordSummary]:
    ids = [int(k) for k in keys if k.isdigit()]
    if kind is Kind.CALENDAR:
        events = Event.objects.filter(organization_id=organization_id, pk__in=ids)\
            .select_related("owner", "category")
        return {str(e.pk): RecordSummary(str(e.pk), e.subject, event_record(e),
                                         owner=_owner(e)) for e in events}
    if kind is not Kind.CONTACTS:
        return {}
    persons = {p.pk: p for p in Person.objects.filter(organization_id=organization_id,
                                                      pk__in=ids).prefetch_related("companies")}
    # The company the sync compares: a person's first.
    first_company: dict[int, str] = {}
    for person_id, name in PersonCompany.objects.filter(person_id__in=persons)\
            .order_by("id").values_list("person_id", "company__name"):
        first_company.setdefault(person_id, name)
    return {str(pk): RecordSummary(str(pk), p.display_name,
                                   person_record(p, first_company.get(pk, "")),
                                   companies=tuple(c.name for c in p.companies.all()))
            for pk, p in persons.items()}


def _owner(event: Event) -> str:
    # The CRM keeps no organizer: the event's owner is the one who set it up.
    return event.owner.email.lower() or event.owner.name


def field_labels(kind: Kind) -> dict[str, str]:
    if kind is not Kind.CONTACTS:
        return {}
    columns = {*PLAIN_FIELDS, *(f"{kind}_{part}" for kind in ADDRESS_KINDS
                                for part in ADDRESS_PARTS)}
    return {f.name: str(capfirst(f.verbose_name)) for f in Person._meta.get_fields()
            if f.name in columns}


def record_url(kind: Kind, key: str) -> str:
    if kind not in ADMIN_PAGE or not key.isdigit():
        return ""
    try:
        return reverse(ADMIN_PAGE[kind], args=[key])
    except NoReverseMatch:
        return ""
