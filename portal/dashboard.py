"""The dashboard: the user's profiles; per agenda the last run, the next one and the live
progress of a running one; the buttons that queue a sync or an analysis.

"Sync now" only queues runs for the workers (a web request never waits on Exchange), like
the admin's button. Until a worker starts the run, the dashboard says it is queued: the
session remembers when the user pressed the button.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from engine import jobs, pausing
from engine.models import Agenda, Job, Lease, Run
from portal.access import profile_or_404, sees_several_users, visible_profiles
from portal.paging import page_of
from portal.quiet import QUIET
from profiles.models import SyncProfile
from profiles.setup import inactive_message

log = logging.getLogger(__name__)

QUEUED_SESSION_KEY = "portal_queued"
# A queued run no worker has started by then is forgotten (the dispatcher takes a queued job
# for lost after 20 minutes, engine.jobs.LOST_AFTER).
QUEUED_FOR = dt.timedelta(minutes=30)
# The worker's clock may run a little behind the web server's: a run started this much
# before the button was pressed still counts as the one the button queued.
CLOCK_SLACK = dt.timedelta(seconds=10)
PROFILES_PER_PAGE = 20
# How often the page asks for news (milliseconds): often while something runs or waits in
# the queue, rarely otherwise (a scheduled run starts on its own).
POLL_BUSY, POLL_IDLE = 1000, 15000
NOT_LAST = [Run.Status.RUNNING, Run.Status.REFUSED, Run.Status.PAUSED]
# Why a run failed, on one line of the dashboard (the whole message is on the run's page).
WHY_LENGTH = 120


@dataclass
class AgendaState:
    """One agenda of one profile, as the dashboard shows it."""

    profile: SyncProfile
    agenda: Agenda
    last: Run | None
    running: Run | None
    job: Job | None
    queued: bool
    # Runs a notification started since `last` that changed nothing (portal.quiet): how
    # many, and the newest of them.
    quiet: int = 0
    quiet_newest: Run | None = None

    @property
    def key(self) -> str:
        return f"{self.profile.pk}-{self.agenda.value}"

    @property
    def busy(self) -> bool:
        return self.running is not None or self.queued

    @property
    def due(self) -> bool:
        """The next run's time has come (a worker starts it within a minute)."""
        return self.job is not None and self.job.next_run_at <= timezone.now()

    @property
    def why(self) -> str:
        """The failed last run's message, shortened to one line."""
        run = self.last
        if run is None or run.status != Run.Status.FAILED or not run.message.strip():
            return ""
        line = run.message.strip().splitlines()[0]
        return Truncator(line).chars(WHY_LENGTH)

    @property
    def percent(self) -> int | None:
        """How far the running run is, when it knows how many records it has (else None).

        A run that has handled all it knows of is not shown as done: it is still going, so
        more is coming that it could not count yet (the next page of an incremental read)."""
        run = self.running
        if run is None or not run.progress_total or run.progress_done >= run.progress_total:
            return None
        return round(100 * run.progress_done / run.progress_total)


def agenda_states(profiles: list[SyncProfile],
                  queued: dict[str, str]) -> dict[int, list[AgendaState]]:
    """Each profile's enabled agendas; a few indexed queries per agenda, none over history."""
    now = timezone.now()
    job_of = {(job.profile_id, job.agenda): job
              for job in Job.objects.filter(profile__in=profiles)}
    # A run still marked running whose lease has expired was cut off (its worker died): it
    # is not shown as going on.
    leased = set(Lease.objects.filter(profile__in=profiles, expires_at__gt=now)
                 .exclude(holder="").values_list("profile_id", "agenda"))
    states: dict[int, list[AgendaState]] = {}
    for profile in profiles:
        rows = states.setdefault(profile.pk, [])
        for agenda in jobs.enabled_agendas(profile):
            runs = Run.objects.filter(profile=profile, agenda=agenda)
            newest = runs.first()
            running = (newest if newest is not None and newest.status == Run.Status.RUNNING
                       and (profile.pk, agenda) in leased else None)
            last, quiet, quiet_newest = _last_run(runs)
            rows.append(AgendaState(profile, Agenda(agenda), last, running,
                                    job_of.get((profile.pk, agenda)),
                                    _still_queued(queued.get(f"{profile.pk}-{agenda}"),
                                                  newest, now), quiet, quiet_newest))
    return states


def _last_run(runs: QuerySet[Run]) -> tuple[Run | None, int, Run | None]:
    """The newest finished run that did something, and the quiet runs after it (how many,
    the newest). An agenda that only ever had quiet runs shows its newest one as the last."""
    finished = runs.exclude(status__in=NOT_LAST)
    last = finished.exclude(QUIET).first()
    quiet = finished.filter(QUIET)
    if last is not None:
        quiet = quiet.filter(started__gt=last.started)
    quiet_newest = quiet.first()
    if quiet_newest is None:
        return last, 0, None
    if last is None:
        return quiet_newest, 0, None
    return last, quiet.count(), quiet_newest


def _still_queued(queued_at: str | None, newest: Run | None, now: dt.datetime) -> bool:
    if not queued_at:
        return False
    try:
        when = dt.datetime.fromisoformat(queued_at)
    except ValueError:
        return False
    if when < now - QUEUED_FOR:
        return False
    return newest is None or newest.started < when - CLOCK_SLACK


def _queued(request: HttpRequest) -> dict[str, str]:
    value = request.session.get(QUEUED_SESSION_KEY)
    return value if isinstance(value, dict) else {}


# --- pages ---------------------------------------------------------------------------------
@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    page = page_of(visible_profiles(request.user).select_related("user", "organization"),
                   request.GET, PROFILES_PER_PAGE)
    profiles = list(page.items)
    states = agenda_states(profiles, _queued(request))
    cards = [(profile, states[profile.pk]) for profile in profiles]
    return render(request, "portal/dashboard.html", {
        "cards": cards, "page": page, "show_owner": sees_several_users(request.user),
        "busy": any(state.busy for rows in states.values() for state in rows),
        "poll_busy": POLL_BUSY, "poll_idle": POLL_IDLE,
    })


@never_cache
@login_required
@require_GET
def status(request: HttpRequest) -> JsonResponse:
    """What the dashboard's rows of these profiles show now, as HTML to put in place."""
    try:
        ids = sorted({int(value) for value in request.GET.getlist("profile")})
    except ValueError:
        raise Http404(_("No such sync profile.")) from None
    profiles = list(visible_profiles(request.user).filter(pk__in=ids))
    if len(profiles) != len(ids):
        raise Http404(_("No such sync profile."))
    states = agenda_states(profiles, _queued(request))
    rows = []
    for state in (state for profile in profiles for state in states[profile.pk]):
        cells = {cell: render_to_string(f"portal/_agenda_{cell}.html", {"state": state},
                                        request=request)
                 for cell in ("last", "next", "now")}
        rows.append({"key": state.key, "busy": state.busy, "cells": cells})
    busy = any(row["busy"] for row in rows)
    return JsonResponse({"rows": rows, "poll": POLL_BUSY if busy else POLL_IDLE})


@login_required
@require_POST
def sync_now(request: HttpRequest, pk: int) -> HttpResponse:
    return _queue(request, pk, dry_run=False)


@login_required
@require_POST
def analyze(request: HttpRequest, pk: int) -> HttpResponse:
    return _queue(request, pk, dry_run=True)


def _queue(request: HttpRequest, pk: int, *, dry_run: bool) -> HttpResponse:
    profile = profile_or_404(request.user, pk)
    agendas = jobs.enabled_agendas(profile)
    wanted = request.POST.get("agenda", "")
    if wanted:
        if wanted not in agendas:
            raise Http404(_("This agenda is not synced for this profile."))
        agendas = [wanted]
    back = reverse("portal:dashboard") + f"#profile-{profile.pk}"
    if not (profile.active or dry_run):
        messages.warning(request, inactive_message(profile, administrator=False))
        return redirect(back)
    if not agendas:
        messages.warning(request, _("No agenda is switched on for %(mailbox)s.")
                         % {"mailbox": profile.mailbox})
        return redirect(back)
    paused = [agenda for agenda in agendas if agenda in pausing.paused_agendas(profile.pk)]
    if paused:
        _say_paused(request, profile, paused, everything=len(paused) == len(agendas))
        agendas = [agenda for agenda in agendas if agenda not in paused]
        if not agendas:
            return redirect(back)
    queued = _queued(request)
    now = timezone.now()
    for agenda in agendas:
        try:
            jobs.enqueue(profile, agenda, dry_run=dry_run, trigger="manual")
        except Exception:
            # The broker is down or misconfigured: the user can only try again later; the
            # log has the details for the administrator.
            log.exception("Could not queue a run of %s (%s)", profile, agenda)
            messages.error(request, _("The run could not be queued. Try again in a while; if "
                                      "it keeps failing, tell your administrator."))
            return redirect(back)
        queued[f"{profile.pk}-{agenda}"] = now.isoformat()
    request.session[QUEUED_SESSION_KEY] = {
        key: when for key, when in queued.items()
        if dt.datetime.fromisoformat(when) > now - QUEUED_FOR}
    count = len(agendas)
    text = (ngettext("Analysis of %(mailbox)s queued (%(count)d agenda): it changes nothing "
                     "and its result appears in the sync history.",
                     "Analysis of %(mailbox)s queued (%(count)d agendas): it changes nothing "
                     "and its result appears in the sync history.", count) if dry_run else
            ngettext("Sync of %(mailbox)s queued (%(count)d agenda): its progress shows below.",
                     "Sync of %(mailbox)s queued (%(count)d agendas): its progress shows below.",
                     count))
    messages.success(request, text % {"mailbox": profile.mailbox, "count": count})
    return redirect(back)


def _say_paused(request: HttpRequest, profile: SyncProfile, agendas: list[str],
                everything: bool) -> None:
    if everything:
        text = _("%(mailbox)s is paused by your administrator: nothing was queued. It syncs "
                 "again once they resume it.") % {"mailbox": profile.mailbox}
    else:
        text = _("Not queued, paused by your administrator: %(agendas)s (%(mailbox)s).") % {
            "mailbox": profile.mailbox,
            "agendas": ", ".join(str(Agenda(agenda).label) for agenda in agendas)}
    messages.warning(request, text)
