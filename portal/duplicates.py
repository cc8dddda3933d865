"""The duplicates report: a CRM record and an Exchange item that look like the same person
(they share an e-mail address, or have none and the same name and company) or the same
meeting (the same UID, or the same subject and start), side by side with every field that
differs (portal.pairs), for the user to link or keep apart, one pair or many at once.

A decision is only recorded here; the profile's next sync carries it out
(`TwoWaySync._apply_decisions` in engine/run/flow.py reads `decision` and sets `applied`).
Until then it can be changed.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_POST

from engine.models import DuplicateCandidate
from portal.access import (
    candidate_or_404,
    sees_several_users,
    visible_candidates,
    visible_profiles,
)
from portal.csvexport import csv_format, csv_response
from portal.paging import page_of
from portal.pairs import crm_sides, meeting_reason

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
        "pairs": [(candidate, sides[candidate.pk],
                   meeting_reason(candidate.address) if candidate.agenda == "calendar" else "")
                  for candidate in page.items],
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


def _back(request: HttpRequest) -> str:
    """The report page the decision came from, never another site."""
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()},
                                           require_https=request.is_secure()):
        back = reverse("portal:duplicates")
    return back


def _decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    candidate = candidate_or_404(request.user, pk)
    back = _back(request)
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


BULK_DECISIONS = {"link": Decision.LINKED, "apart": Decision.APART}


@login_required
@require_POST
def decide_selected(request: HttpRequest) -> HttpResponse:
    """One decision for the pairs ticked on the page ("link selected", "keep apart
    selected"). Every pair must be the user's to decide: one that is not (another
    organization's, or made up) refuses the whole request, as a single pair's page would."""
    decision = BULK_DECISIONS.get(request.POST.get("decision", ""))
    try:
        ids = {int(value) for value in request.POST.getlist("pair")}
    except ValueError:
        raise Http404(_("No such pair.")) from None
    if decision is None:
        raise Http404(_("No such decision."))
    back = _back(request)
    if not ids:
        messages.warning(request, _("Tick the pairs to decide first."))
        return redirect(back)
    pairs = visible_candidates(request.user).filter(pk__in=ids)
    if pairs.count() != len(ids):
        raise Http404(_("No such pair."))
    # Only decisions not yet carried out change (as for one pair).
    changed = pairs.filter(applied=False).update(decision=decision, decided=timezone.now())
    if changed and decision == Decision.LINKED:
        messages.success(request, ngettext(
            "%(count)d pair will be linked by the next sync.",
            "%(count)d pairs will be linked by the next sync.", changed) % {"count": changed})
    elif changed:
        messages.success(request, ngettext(
            "%(count)d pair will be kept apart; the next sync looks at each record again on "
            "its own.",
            "%(count)d pairs will be kept apart; the next sync looks at each record again on "
            "its own.", changed) % {"count": changed})
    if len(ids) > changed:
        done = len(ids) - changed
        messages.warning(request, ngettext(
            "The decision on %(count)d pair had already been carried out: it stays.",
            "The decisions on %(count)d pairs had already been carried out: they stay.",
            done) % {"count": done})
    return redirect(back)


@login_required
@require_GET
def duplicates_csv(request: HttpRequest) -> StreamingHttpResponse:
    form = DuplicatesFilter(request)
    candidates = form.shown(form.profile_scope(visible_candidates(request.user)))
    fmt = csv_format()
    header = [_("Profile"), _("Agenda"), _("Decision"), _("Carried out"), _("Shared address"),
              _("CRM record"), _("CRM key"), _("Exchange item"), _("Exchange item id"),
              _("Found"), _("Decided")]

    rows = ([c.profile.mailbox, c.get_agenda_display(), c.get_decision_display(),
             _("yes") if c.applied else _("no"), c.shared, c.crm_title, c.crm_key,
             c.remote_title, c.remote_id, fmt.time(c.found), fmt.time(c.decided)]
            for c in candidates.select_related("profile").order_by("-found", "pk")
            .iterator(chunk_size=500))
    return csv_response("duplicates.csv", header, rows, fmt)
