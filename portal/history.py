"""The sync history: runs filtered by agenda, status and date, a chart of recent runs, one
run's detail with its items, and both as CSV."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from engine.crmstore.base import CrmBackend
from engine.crmstore.registry import organization_crm
from engine.models import Agenda, Run, RunItem
from engine.reasons import describe
from engine.records import Kind
from portal import chart
from portal.access import run_or_404, sees_several_users, visible_profiles, visible_runs
from portal.csvexport import csv_format, csv_response
from portal.paging import page_of
from portal.quiet import QUIET, is_quiet

RUNS_PER_PAGE = 50
ITEMS_PER_PAGE = 100
CHART_RUNS = 30
ITEM_COUNTS = ["crm_created", "crm_updated", "crm_deleted", "remote_created", "remote_updated",
               "remote_deleted", "linked"]


class HistoryFilter(forms.Form):
    """The history's filters (GET). A value that does not parse is left out, not refused."""

    profile = forms.ModelChoiceField(queryset=None, required=False,
                                     label=gettext_lazy("Profile"),
                                     empty_label=gettext_lazy("All profiles"))
    agenda = forms.ChoiceField(required=False, label=gettext_lazy("Agenda"),
                               choices=[("", gettext_lazy("All agendas")), *Agenda.choices])
    status = forms.ChoiceField(required=False, label=gettext_lazy("Status"),
                               choices=[("", gettext_lazy("Any status")), *Run.Status.choices])
    kind = forms.ChoiceField(required=False, label=gettext_lazy("Kind"),
                             choices=[("", gettext_lazy("Syncs and analyses")),
                                      *Run.Kind.choices])
    since = forms.DateField(required=False, label=gettext_lazy("From"),
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label=gettext_lazy("To"),
                            widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, request: HttpRequest) -> None:
        super().__init__(request.GET)
        profiles = visible_profiles(request.user)
        self.fields["profile"].queryset = profiles
        if not sees_several_users(request.user) and profiles.count() < 2:
            del self.fields["profile"]   # one profile: nothing to choose

    def filter(self, runs: QuerySet[Run]) -> QuerySet[Run]:
        self.is_valid()
        values = {name: value for name, value in self.cleaned_data.items() if value}
        if "profile" in values:
            runs = runs.filter(profile=values["profile"])
        for name in ("agenda", "status", "kind"):
            if name in values:
                runs = runs.filter(**{name: values[name]})
        # Dates are the user's days (the site's time zone), each taken whole.
        if "since" in values:
            runs = runs.filter(started__gte=_start_of(values["since"]))
        if "until" in values:
            runs = runs.filter(started__lt=_start_of(values["until"] + dt.timedelta(days=1)))
        return runs


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time()))


def _runs(request: HttpRequest) -> tuple[HistoryFilter, QuerySet[Run]]:
    form = HistoryFilter(request)
    return form, form.filter(visible_runs(request.user).select_related("profile"))


def item_count(run: Run) -> int:
    return sum(getattr(run, name) for name in ITEM_COUNTS)


@dataclass
class QuietRuns:
    """Runs next to each other in the history that a change notice started and that changed
    nothing (portal.quiet): one row that opens to list them, newest first."""

    runs: list[Run]

    @property
    def span(self) -> str:
        """From the oldest run's start to the newest's ("7.12.2026 9:10–9:45")."""
        first = timezone.localtime(self.runs[-1].started)
        last = timezone.localtime(self.runs[0].started)
        end = formats.time_format(last, "TIME_FORMAT") if first.date() == last.date() \
            else formats.date_format(last, "SHORT_DATETIME_FORMAT")
        return f"{formats.date_format(first, 'SHORT_DATETIME_FORMAT')}–{end}"


# Fewer quiet runs in a row than this are listed as they are.
QUIET_GROUP_MIN = 2


def history_rows(runs: Sequence[Run]) -> list[Run | QuietRuns]:
    """A page's runs, each stretch of quiet runs folded into one row."""
    rows: list[Run | QuietRuns] = []
    stretch: list[Run] = []
    for run in [*runs, None]:
        if run is not None and is_quiet(run):
            stretch.append(run)
            continue
        rows.extend([QuietRuns(stretch)] if len(stretch) >= QUIET_GROUP_MIN else stretch)
        stretch = []
        if run is not None:
            rows.append(run)
    return rows


def history_chart(runs: Iterable[Run]) -> chart.Chart:
    """The newest runs, oldest on the left."""
    points = []
    for run in reversed(list(runs)):
        items = item_count(run)
        when = formats.date_format(timezone.localtime(run.started), "SHORT_DATETIME_FORMAT")
        title = _("%(when)s, %(agenda)s: %(items)d items, %(errors)d errors") % {
            "when": when, "agenda": run.get_agenda_display(), "items": items,
            "errors": run.errors}
        started = timezone.localtime(run.started)
        points.append(chart.Point(items, run.errors, title,
                                  formats.time_format(started, "TIME_FORMAT"),
                                  formats.date_format(started, "SHORT_DATE_FORMAT")))
    return chart.bar_chart(points, slots=CHART_RUNS)


# --- pages ---------------------------------------------------------------------------------
@login_required
@require_GET
def history(request: HttpRequest) -> HttpResponse:
    form, runs = _runs(request)
    page = page_of(runs, request.GET, RUNS_PER_PAGE)
    # The chart leaves quiet runs out: thirty empty columns would push the run that did
    # something off it.
    recent = list(runs.exclude(QUIET)[:CHART_RUNS])
    export = request.GET.copy()
    export.pop("page", None)
    return render(request, "portal/history.html", {
        "form": form, "page": page, "rows": history_rows(page.items),
        "chart": history_chart(recent), "chart_runs": len(recent),
        "show_profile": "profile" in form.fields, "export_query": export.urlencode(),
    })


@login_required
@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = run_or_404(request.user, pk)
    action = request.GET.get("action", "")
    items = run.items.all()
    if action in RunItem.Action.values:
        items = items.filter(action=action)
    else:
        action = ""
    page = page_of(items, request.GET, ITEMS_PER_PAGE)
    crm = organization_crm(run.profile.organization_id) if request.user.is_staff else None
    rows = [(item, crm_record_url(crm, run, item)) for item in page.items]
    # What a waiting run stopped before: deletions, creations or both (the guards).
    held = set(run.items.filter(action__in=[RunItem.Action.PENDING_DELETE,
                                            RunItem.Action.PENDING_CREATE])
               .values_list("action", flat=True).distinct()) \
        if run.status == Run.Status.WAITING else set()
    return render(request, "portal/run_detail.html", {
        "run": run, "rows": rows, "page": page, "action": action,
        "held_deletions": RunItem.Action.PENDING_DELETE in held,
        "held_creations": RunItem.Action.PENDING_CREATE in held,
        "tabs": _item_tabs(run), "trigger": trigger_label(run.trigger),
        "sides": [
            (_("Created"), run.crm_created, run.remote_created),
            (_("Updated"), run.crm_updated, run.remote_updated),
            (_("Deleted"), run.crm_deleted, run.remote_deleted),
        ],
    })


def _item_tabs(run: Run) -> list[tuple[str, str, int | None]]:
    """(action, label, count) of the item filters: all, then the ones that need a look."""
    return [("", _("All items"), None),
            (RunItem.Action.ERROR, _("Errors"), run.errors),
            (RunItem.Action.CONFLICT, _("Conflicts"), run.conflicts),
            (RunItem.Action.SKIP, _("Skipped"), run.skipped),
            (RunItem.Action.DUPLICATE, _("Possible duplicates"), run.duplicates),
            (RunItem.Action.PENDING_DELETE, _("Deletions waiting for approval"), None),
            (RunItem.Action.PENDING_CREATE, _("Creations waiting for approval"), None)]


def crm_record_url(crm: CrmBackend | None, run: Run, item: RunItem) -> str:
    """The CRM record's own page, for those who may open it (staff: `crm` only for them)."""
    if crm is None or not item.crm_key:
        return ""
    try:
        return crm.record_url(Kind(run.agenda), item.crm_key)
    except ValueError:   # an agenda that is no kind of record
        return ""


# --- CSV -----------------------------------------------------------------------------------
@login_required
@require_GET
def history_csv(request: HttpRequest) -> StreamingHttpResponse:
    _form, runs = _runs(request)
    fmt = csv_format()
    header = [_("Run"), _("Started"), _("Finished"), _("Duration (s)"), _("Profile"),
              _("Agenda"), _("Kind"),
              _("Status"), _("Started by"), _("Created in the CRM"), _("Updated in the CRM"),
              _("Deleted in the CRM"), _("Created in Exchange"), _("Updated in Exchange"),
              _("Deleted in Exchange"), _("Linked"), _("Conflicts"), _("Skipped"), _("Errors"),
              _("Possible duplicates"), _("Message")]
    rows = ([run.pk, fmt.time(run.started), fmt.time(run.finished), fmt.number(run.duration),
             run.profile.mailbox,
             run.get_agenda_display(), run.get_kind_display(), run.get_status_display(),
             trigger_label(run.trigger), run.crm_created, run.crm_updated, run.crm_deleted,
             run.remote_created, run.remote_updated, run.remote_deleted, run.linked,
             run.conflicts, run.skipped, run.errors, run.duplicates, describe(run.message)]
            for run in runs.iterator(chunk_size=500))
    return csv_response("sync-history.csv", header, rows, fmt)


@login_required
@require_GET
def run_items_csv(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    run = run_or_404(request.user, pk)
    header = [_("Action"), _("Item"), _("Detail"), _("CRM record"), _("Exchange item")]
    rows = ([item.get_action_display(), item.title, item.reason, item.crm_key, item.remote_id]
            for item in run.items.all().iterator(chunk_size=1000))
    return csv_response(f"sync-run-{run.pk}.csv", header, rows, csv_format())


def trigger_label(trigger: str) -> str:
    """Who or what started a run, in words (Run.trigger holds a code)."""
    return str(Run.TRIGGERS.get(trigger, trigger))
