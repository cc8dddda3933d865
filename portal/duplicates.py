"""The duplicates report: a CRM record and an Exchange item that look like the same person
(they share an e-mail address, or have none and the same name and company), side by side with
every field that differs, for the user to link or keep apart.

A decision is only recorded here; the profile's next sync carries it out
(`AgendaSync._apply_decisions` reads `decision` and sets `applied`). Until then it can be
changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from crm.models import ADDRESS_KINDS, ADDRESS_PARTS, PHONE_FIELDS, Event, Person, PersonCompany
from engine.crmstore.builtin import person_record
from engine.models import Agenda, DuplicateCandidate
from engine.records import ContactRecord, canonical
from portal.access import (
    candidate_or_404,
    sees_several_users,
    visible_candidates,
    visible_profiles,
)
from portal.csvexport import csv_response, csv_time
from portal.paging import page_of

PAIRS_PER_PAGE = 25
Decision = DuplicateCandidate.Decision


class DuplicatesFilter(forms.Form):
    SHOW = [("open", gettext_lazy("Waiting for a decision")),
            ("decided", gettext_lazy("Decided, carried out by the next sync")),
            ("done", gettext_lazy("Carried out")),
            ("all", gettext_lazy("All"))]

    show = forms.ChoiceField(choices=SHOW, required=False, label=gettext_lazy("Show"))
    profile = forms.ModelChoiceField(queryset=None, required=False,
                                     label=gettext_lazy("Profile"),
                                     empty_label=gettext_lazy("All profiles"))

    def __init__(self, request: HttpRequest) -> None:
        super().__init__(request.GET)
        profiles = visible_profiles(request.user)
        self.fields["profile"].queryset = profiles
        if not sees_several_users(request.user) and profiles.count() < 2:
            del self.fields["profile"]

    def profile_scope(self, candidates: QuerySet[DuplicateCandidate],
                      ) -> QuerySet[DuplicateCandidate]:
        self.is_valid()
        profile = self.cleaned_data.get("profile")
        return candidates.filter(profile=profile) if profile else candidates

    def shown(self, candidates: QuerySet[DuplicateCandidate]) -> QuerySet[DuplicateCandidate]:
        self.is_valid()
        show = self.cleaned_data.get("show") or "open"
        if show == "open":
            return candidates.filter(decision=Decision.OPEN)
        if show == "decided":
            return candidates.exclude(decision=Decision.OPEN).filter(applied=False)
        if show == "done":
            return candidates.exclude(decision=Decision.OPEN).filter(applied=True)
        return candidates


@dataclass(frozen=True)
class FieldRow:
    """One field of a pair: its value in the CRM and in Exchange."""

    label: str
    crm: str
    exchange: str

    @property
    def differs(self) -> bool:
        return self.crm != self.exchange


@dataclass
class CrmSide:
    """The CRM record of a pair as the report shows it; `compared`: its fields beside the
    Exchange item's, when the sync kept those (contacts found since it does)."""

    title: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    gone: bool = False
    compared: list[FieldRow] = field(default_factory=list)

    @property
    def differing(self) -> str:
        return ", ".join(row.label for row in self.compared if row.differs)


# A contact's fields in the order the report lists them; addresses by their parts, named as
# the CRM's columns (whose labels they take).
CONTACT_ROWS = ("title", "first_name", "middle_name", "last_name", "suffix", "company",
                "job_title", "department", "web_page", "email1", "email2", "email3",
                *PHONE_FIELDS, *(f"{kind}_{part}" for kind in ADDRESS_KINDS
                                 for part in ADDRESS_PARTS), "note")


def crm_sides(request: HttpRequest,
              candidates: list[DuplicateCandidate]) -> dict[int, CrmSide]:
    """The CRM side of each pair, read in one query per agenda."""
    keys = {agenda: {int(c.crm_key) for c in candidates
                     if c.agenda == agenda and c.crm_key.isdigit()}
            for agenda in (Agenda.CONTACTS, Agenda.CALENDAR)}
    organizations = {c.profile.organization_id for c in candidates}
    persons = {p.pk: p for p in Person.objects.filter(
        pk__in=keys[Agenda.CONTACTS], organization_id__in=organizations)
        .prefetch_related("companies")}
    # The company the sync compares: a person's first.
    first_company: dict[int, str] = {}
    for person_id, name in PersonCompany.objects.filter(person_id__in=persons)\
            .order_by("id").values_list("person_id", "company__name"):
        first_company.setdefault(person_id, name)
    events = {e.pk: e for e in Event.objects.filter(
        pk__in=keys[Agenda.CALENDAR], organization_id__in=organizations)}
    sides: dict[int, CrmSide] = {}
    for candidate in candidates:
        key = int(candidate.crm_key) if candidate.crm_key.isdigit() else None
        person, event = persons.get(key or 0), events.get(key or 0)
        if candidate.agenda == Agenda.CONTACTS and person is not None \
                and person.organization_id == candidate.profile.organization_id:
            sides[candidate.pk] = _person_side(request, person)
            if candidate.remote_fields:
                sides[candidate.pk].compared = compared(
                    person_record(person, first_company.get(person.pk, "")),
                    candidate.remote_fields)
        elif candidate.agenda == Agenda.CALENDAR and event is not None \
                and event.organization_id == candidate.profile.organization_id:
            sides[candidate.pk] = _event_side(request, event)
        else:
            sides[candidate.pk] = CrmSide(candidate.crm_title, gone=True)
    return sides


def _person_side(request: HttpRequest, person: Person) -> CrmSide:
    companies = ", ".join(company.name for company in person.companies.all())
    # Not person.emails: the CRM e-mails filed against the person took that name.
    addresses = ", ".join(e for e in (person.email1, person.email2, person.email3) if e)
    rows = [(_("E-mail"), addresses), (_("Company"), companies),
            (_("Job title"), person.job_title), (_("Department"), person.department),
            (_("Business phone"), person.phone_business),
            (_("Mobile phone"), person.phone_mobile),
            (_("City"), person.business_city or person.home_city)]
    url = reverse("admin:crm_person_change", args=[person.pk]) if request.user.is_staff else ""
    return CrmSide(person.display_name, [(label, value) for label, value in rows if value], url)


def compared(crm: ContactRecord, exchange: dict[str, Any]) -> list[FieldRow]:
    """The fields either side has, each with both values."""
    crm_values, exchange_values = _flat(canonical(crm)), _flat(exchange)
    labels = {f.name: str(capfirst(f.verbose_name)) for f in Person._meta.get_fields()
              if f.name in CONTACT_ROWS}
    labels["company"] = _("Company")
    rows = [FieldRow(labels[name], crm_values.get(name, ""), exchange_values.get(name, ""))
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


def _event_side(request: HttpRequest, event: Event) -> CrmSide:
    start = formats.date_format(timezone.localtime(event.start), "SHORT_DATETIME_FORMAT")
    rows = [(_("Start"), start), (_("Location"), event.location)]
    url = reverse("admin:crm_event_change", args=[event.pk]) if request.user.is_staff else ""
    return CrmSide(event.subject, [(label, value) for label, value in rows if value], url)


def decision_counts(candidates: QuerySet[DuplicateCandidate]) -> dict[str, int]:
    decided = ~Q(decision=Decision.OPEN)
    return candidates.aggregate(
        open=Count("pk", filter=Q(decision=Decision.OPEN)),
        to_link=Count("pk", filter=Q(decision=Decision.LINKED, applied=False)),
        to_keep_apart=Count("pk", filter=Q(decision=Decision.APART, applied=False)),
        done=Count("pk", filter=decided & Q(applied=True)),
    )


# --- pages ---------------------------------------------------------------------------------
@login_required
@require_GET
def duplicates(request: HttpRequest) -> HttpResponse:
    form = DuplicatesFilter(request)
    scope = form.profile_scope(visible_candidates(request.user))
    shown = form.shown(scope).select_related("profile").order_by("-found", "pk")
    page = page_of(shown, request.GET, PAIRS_PER_PAGE)
    sides = crm_sides(request, list(page.items))
    export = request.GET.copy()
    export.pop("page", None)
    return render(request, "portal/duplicates.html", {
        "form": form, "page": page, "counts": decision_counts(scope),
        "pairs": [(candidate, sides[candidate.pk]) for candidate in page.items],
        "show_owner": sees_several_users(request.user), "export_query": export.urlencode(),
        "here": request.get_full_path(),
    })


@login_required
@require_POST
def link(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, Decision.LINKED)


@login_required
@require_POST
def keep_apart(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, Decision.APART)


def _decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    candidate = candidate_or_404(request.user, pk)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()},
                                           require_https=request.is_secure()):
        back = reverse("portal:duplicates")
    names = {"crm": candidate.crm_title, "exchange": candidate.remote_title}
    # Only a decision not yet carried out may change: once linked, the pair is a link.
    changed = DuplicateCandidate.objects.filter(pk=candidate.pk, applied=False).update(
        decision=decision, decided=timezone.now())
    if not changed:
        messages.warning(request, _("The decision on “%(crm)s” and “%(exchange)s” has already "
                                    "been carried out.") % names)
    elif decision == Decision.LINKED:
        messages.success(request, _("“%(crm)s” and “%(exchange)s” will be linked by the next "
                                    "sync.") % names)
    else:
        messages.success(request, _("“%(crm)s” and “%(exchange)s” will be kept apart; the next "
                                    "sync looks at each again on its own.") % names)
    return redirect(back)


@login_required
@require_GET
def duplicates_csv(request: HttpRequest) -> StreamingHttpResponse:
    form = DuplicatesFilter(request)
    candidates = form.shown(form.profile_scope(visible_candidates(request.user)))
    header = [_("Profile"), _("Agenda"), _("Decision"), _("Carried out"), _("Shared address"),
              _("CRM record"), _("CRM key"), _("Exchange item"), _("Exchange item id"),
              _("Found"), _("Decided")]

    rows = ([c.profile.mailbox, c.get_agenda_display(), c.get_decision_display(),
             _("yes") if c.applied else _("no"), c.shared, c.crm_title, c.crm_key,
             c.remote_title, c.remote_id, csv_time(c.found), csv_time(c.decided)]
            for c in candidates.select_related("profile").order_by("-found", "pk")
            .iterator(chunk_size=500))
    return csv_response("duplicates.csv", header, rows)
