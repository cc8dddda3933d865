"""The two records of a duplicate pair, field by field, as the duplicates report shows them.

Contacts: every field either side has, labelled as the CRM labels its columns. Meetings:
subject, when, organizer and location, as a person tells two meetings apart. The Exchange
side is what the sync kept when it found the pair (`DuplicateCandidate.remote_fields`), so
the report never asks Exchange.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from engine.crmstore.base import CrmBackend, RecordSummary
from engine.crmstore.registry import organization_crm
from engine.models import Agenda, DuplicateCandidate
from engine.records import ContactRecord, EventRecord, Kind, PostalAddress, canonical


@dataclass(frozen=True)
class FieldRow:
    """One field of a pair: its value in the CRM and in Exchange."""

    label: str
    crm: str
    exchange: str
    # False where the two sides hold different things under one label (a meeting's
    # organizer in Exchange, its owner's name in the CRM): shown, never marked.
    comparable: bool = True

    @property
    def differs(self) -> bool:
        return self.comparable and self.crm != self.exchange


@dataclass
class CrmSide:
    """The CRM record of a pair as the report shows it; `compared`: its fields beside the
    Exchange item's, when the sync kept those (pairs found since it does)."""

    title: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    gone: bool = False
    compared: list[FieldRow] = field(default_factory=list)

    @property
    def differing(self) -> str:
        return ", ".join(row.label for row in self.compared if row.differs)


ADDRESS_PARTS = tuple(f.name for f in dataclasses.fields(PostalAddress))
ADDRESS_KINDS = tuple(f.name.removesuffix("_address") for f in dataclasses.fields(ContactRecord)
                      if f.name.endswith("_address"))
PHONE_FIELDS = tuple(f.name for f in dataclasses.fields(ContactRecord)
                     if f.name.startswith("phone_"))
# A contact's fields in the order the report lists them; addresses by their parts (the names
# the CRM's labels go by).
CONTACT_ROWS = ("title", "first_name", "middle_name", "last_name", "suffix", "company",
                "job_title", "department", "web_page", "email1", "email2", "email3",
                *PHONE_FIELDS, *(f"{kind}_{part}" for kind in ADDRESS_KINDS
                                 for part in ADDRESS_PARTS), "note")


def crm_sides(request: HttpRequest,
              candidates: list[DuplicateCandidate]) -> dict[int, CrmSide]:
    """The CRM side of each pair, read in one request per organization and agenda."""
    kinds = {Agenda.CONTACTS: Kind.CONTACTS, Agenda.CALENDAR: Kind.CALENDAR}
    wanted: dict[tuple[int, str], set[str]] = {}
    for candidate in candidates:
        if candidate.agenda in kinds:
            wanted.setdefault((candidate.profile.organization_id, candidate.agenda),
                              set()).add(candidate.crm_key)
    crms: dict[int, CrmBackend] = {}
    found: dict[tuple[int, str], dict[str, RecordSummary]] = {}
    for (organization_id, agenda), keys in wanted.items():
        crm = crms.setdefault(organization_id, organization_crm(organization_id))
        found[organization_id, agenda] = crm.summaries(kinds[Agenda(agenda)], sorted(keys))
    sides: dict[int, CrmSide] = {}
    for candidate in candidates:
        organization_id = candidate.profile.organization_id
        summary = found.get((organization_id, candidate.agenda), {}).get(candidate.crm_key)
        if summary is None:
            sides[candidate.pk] = CrmSide(candidate.crm_title, gone=True)
            continue
        crm = crms[organization_id]
        url = crm.record_url(kinds[Agenda(candidate.agenda)], summary.key) \
            if request.user.is_staff else ""
        if isinstance(summary.record, ContactRecord):
            sides[candidate.pk] = _person_side(summary, summary.record, url)
            if candidate.remote_fields:
                sides[candidate.pk].compared = compared(
                    summary.record, candidate.remote_fields, crm.field_labels(Kind.CONTACTS))
        elif isinstance(summary.record, EventRecord):
            sides[candidate.pk] = _event_side(summary, summary.record, url,
                                              candidate.remote_fields)
    return sides


def _person_side(summary: RecordSummary, person: ContactRecord, url: str) -> CrmSide:
    companies = ", ".join(summary.companies)
    addresses = ", ".join(e for e in (person.email1, person.email2, person.email3) if e)
    rows = [(_("E-mail"), addresses), (_("Company"), companies),
            (_("Job title"), person.job_title), (_("Department"), person.department),
            (_("Business phone"), person.phone_business),
            (_("Mobile phone"), person.phone_mobile),
            (_("City"), person.business_address.city or person.home_address.city)]
    return CrmSide(summary.title, [(label, value) for label, value in rows if value], url)


def compared(crm: ContactRecord, exchange: dict[str, Any],
             crm_labels: dict[str, str]) -> list[FieldRow]:
    """The fields either side has, each with both values, labelled as the CRM names them."""
    crm_values, exchange_values = _flat(canonical(crm)), _flat(exchange)
    labels = {**crm_labels, "company": _("Company")}
    rows = [FieldRow(labels.get(name, name), crm_values.get(name, ""),
                     exchange_values.get(name, ""))
            for name in CONTACT_ROWS]
    return [row for row in rows if row.crm or row.exchange]


def _flat(data: dict[str, Any]) -> dict[str, str]:
    """A record's canonical data by CONTACT_ROWS' names (an address split into its parts)."""
    flat: dict[str, str] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            kind = name.removesuffix("_address")
            flat.update({f"{kind}_{part}": str(value.get(part) or "") for part in ADDRESS_PARTS})
        elif isinstance(value, str):
            flat[name] = value
    return flat


# --- meetings ------------------------------------------------------------------------------
def _event_side(summary: RecordSummary, event: EventRecord, url: str,
                exchange: dict[str, Any]) -> CrmSide:
    crm = {"subject": event.subject, "start": event.start, "end": event.end,
           "all_day": event.all_day, "location": event.location, "organizer": summary.owner}
    rows = meeting_rows(crm, _exchange_meeting(exchange)) if exchange else []
    side = CrmSide(summary.title, url=url, compared=rows)
    if not rows:   # found before the sync kept Exchange's side: the CRM's alone
        side.fields = [(row.label, row.crm) for row in meeting_rows(crm, {}) if row.crm]
    return side


def _exchange_meeting(data: dict[str, Any]) -> dict[str, Any]:
    """A meeting's canonical data (times as ISO text in UTC) as meeting_rows reads it."""
    def moment(value: Any) -> dt.datetime | None:
        try:
            return dt.datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            return None

    return {"subject": data.get("subject") or "", "start": moment(data.get("start")),
            "end": moment(data.get("end")), "all_day": bool(data.get("all_day")),
            "location": data.get("location") or "", "organizer": data.get("organizer") or ""}


def meeting_rows(crm: dict[str, Any], exchange: dict[str, Any]) -> list[FieldRow]:
    """Subject, when, organizer and location of both sides."""
    return [
        FieldRow(_("Subject"), crm.get("subject") or "", exchange.get("subject") or ""),
        FieldRow(_("When"), when(crm), when(exchange)),
        FieldRow(_("Organizer"), crm.get("organizer") or "", exchange.get("organizer") or "",
                 comparable="@" in (crm.get("organizer") or "")),
        FieldRow(_("Location"), crm.get("location") or "", exchange.get("location") or ""),
    ]


def when(meeting: dict[str, Any]) -> str:
    """When a meeting is, in the site's time zone: "7. 12. 2026 9:00–10:30" (the end's day
    only if another)."""
    start, end = meeting.get("start"), meeting.get("end")
    if start is None:
        return ""
    start = timezone.localtime(start)
    if meeting.get("all_day"):
        # An all-day event ends at the next midnight: its last day is the one before.
        last = timezone.localtime(end).date() - dt.timedelta(days=1) if end else start.date()
        first_day = formats.date_format(start, "SHORT_DATE_FORMAT")
        if last <= start.date():
            return _("%(day)s, all day") % {"day": first_day}
        return _("%(first)s–%(last)s, all day") % {
            "first": first_day, "last": formats.date_format(last, "SHORT_DATE_FORMAT")}
    text = formats.date_format(start, "SHORT_DATETIME_FORMAT")
    if end is None:
        return text
    end = timezone.localtime(end)
    until = formats.time_format(end, "TIME_FORMAT") if end.date() == start.date() \
        else formats.date_format(end, "SHORT_DATETIME_FORMAT")
    return f"{text}–{until}"


# Why the sync took two meetings for one (CalendarRules.describe_key, stored in English in
# the candidate's `address`), in words a person reads.
def meeting_reason(address: str) -> str:
    if address.startswith("uid:") or address == "the same meeting UID":
        return _("They have the same meeting UID.")
    return _("They have the same subject and start.")
