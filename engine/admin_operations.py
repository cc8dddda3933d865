"""Operating sync profiles from the admin: sync now, analyze, force resync, pause, resume.

Each is a list action (on the selected profiles) and a button on the profile's change page.
Sync now and analyze only *enqueue* runs for the workers: a web request never waits on
Exchange. Everything goes through the admin's organization-scoped queryset, so an
organization administrator can act only on their own organization's profiles (another
organization's profile is answered like a missing one: 404).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from engine import jobs, pausing, resync
from engine.models import Agenda, Job
from profiles.models import SyncProfile
from profiles.setup import inactive_message

OPERATION_ACTIONS = ["sync_now", "analyze", "force_resync", "pause_jobs", "resume_jobs"]


class SyncOperationsMixin:
    """Mixed into SyncProfileAdmin (before the other mixins)."""

    change_form_template = "admin/engine/syncprofile_change_form.html"
    operation_views = {"sync-now": "sync_now", "analyze": "analyze",
                       "pause": "pause_jobs", "resume": "resume_jobs"}

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Each agenda's schedule, shown read-only under the form. Not an inline: an inline
        # would add a formset that every post of the profile form must then carry.
        in_scope = self.get_queryset(request).filter(  # type: ignore[attr-defined]
            pk=unquote(object_id)).values("pk")
        extra_context = {**(extra_context or {}),
                         "sync_jobs": Job.objects.filter(profile__in=in_scope)
                         .select_related("last_run").order_by("agenda")}
        return super().change_view(request, object_id, form_url,  # type: ignore[misc]
                                   extra_context)

    # --- URLs for the change page's buttons ---------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        opts = self.opts  # type: ignore[attr-defined]
        wrap = self.admin_site.admin_view  # type: ignore[attr-defined]
        urls = [
            path(f"<path:object_id>/{slug}/", wrap(require_POST(self._object_view(action))),
                 name=f"{opts.app_label}_{opts.model_name}_{action}")
            for slug, action in self.operation_views.items()
        ]
        urls.append(path("<path:object_id>/force-resync/", wrap(self.force_resync_view),
                         name=f"{opts.app_label}_{opts.model_name}_force_resync"))
        return [*urls, *super().get_urls()]  # type: ignore[misc]

    def _profile(self, request: HttpRequest, object_id: str) -> SyncProfile:
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if obj is None:
            raise Http404(_("No such sync profile."))
        if not self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            raise PermissionDenied
        return obj

    def _change_url(self, profile: SyncProfile) -> str:
        opts = self.opts  # type: ignore[attr-defined]
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change",
                       args=[quote(profile.pk)],
                       current_app=self.admin_site.name)  # type: ignore[attr-defined]

    def _object_view(self, action: str):  # type: ignore[no-untyped-def]
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            profile = self._profile(request, object_id)
            getattr(self, action)(request, SyncProfile.objects.filter(pk=profile.pk))
            return HttpResponseRedirect(self._change_url(profile))
        return view

    # --- the actions --------------------------------------------------------------------------
    def _enqueue_all(self, request: HttpRequest, queryset: QuerySet[SyncProfile],
                     dry_run: bool) -> None:
        queued = switched_on = 0
        for profile in queryset:
            enabled = jobs.enabled_agendas(profile)
            switched_on += len(enabled)
            if not (profile.active or dry_run):
                self.message_user(request, inactive_message(profile),  # type: ignore[attr-defined]
                                  messages.WARNING)
                continue
            held = [agenda for agenda in enabled if agenda in pausing.paused_agendas(profile.pk)]
            if held:
                self._say_paused(request, profile, held, everything=len(held) == len(enabled))
            for agenda in enabled:
                if agenda in held:
                    continue
                try:
                    jobs.enqueue(profile, agenda, dry_run=dry_run, trigger="manual")
                except Exception as exc:
                    self.message_user(  # type: ignore[attr-defined]
                        request, _("Could not queue “%(profile)s”: %(error)s") % {
                            "profile": profile, "error": exc}, messages.ERROR)
                    return
                queued += 1
        if not switched_on:
            self.message_user(  # type: ignore[attr-defined]
                request, _("None of the chosen profiles has an agenda switched on."),
                messages.WARNING)
        if not queued:
            return
        text = (ngettext("Queued %(count)d analysis (dry run): its result appears in the sync "
                         "runs in a moment.",
                         "Queued %(count)d analyses (dry runs): their results appear in the "
                         "sync runs in a moment.", queued) if dry_run else
                ngettext("Queued %(count)d sync: its result appears in the sync runs in a "
                         "moment.",
                         "Queued %(count)d syncs: their results appear in the sync runs in a "
                         "moment.", queued))
        self.message_user(request, text % {"count": queued},  # type: ignore[attr-defined]
                          messages.SUCCESS)

    def _say_paused(self, request: HttpRequest, profile: SyncProfile, agendas: list[str],
                    everything: bool) -> None:
        if everything:
            text = _("“%(profile)s” is paused: nothing was queued. Resume it to sync it "
                     "again.") % {"profile": profile}
        else:
            text = _("“%(profile)s”: not queued, paused: %(agendas)s. Resume it to sync "
                     "them again.") % {"profile": profile, "agendas": _labels(agendas)}
        self.message_user(request, text, messages.WARNING)  # type: ignore[attr-defined]

    @admin.action(description=gettext_lazy("Sync now"), permissions=["change"])
    def sync_now(self, request: HttpRequest, queryset: QuerySet[SyncProfile]) -> None:
        self._enqueue_all(request, queryset, dry_run=False)

    @admin.action(description=gettext_lazy("Analyze (dry run: shows what a sync would do)"),
                  permissions=["change"])
    def analyze(self, request: HttpRequest, queryset: QuerySet[SyncProfile]) -> None:
        self._enqueue_all(request, queryset, dry_run=True)

    def _set_paused(self, request: HttpRequest, queryset: QuerySet[SyncProfile],
                    paused: bool) -> None:
        count = pausing.set_paused(list(queryset), paused)
        text = (ngettext("Paused %(count)d agenda: it does not run at all until it is resumed.",
                         "Paused %(count)d agendas: they do not run at all until they are "
                         "resumed.", count) if paused else
                ngettext("Resumed %(count)d agenda.", "Resumed %(count)d agendas.", count))
        self.message_user(request, text % {"count": count},  # type: ignore[attr-defined]
                          messages.SUCCESS)

    @admin.action(description=gettext_lazy("Pause (no run at all until resumed)"),
                  permissions=["change"])
    def pause_jobs(self, request: HttpRequest, queryset: QuerySet[SyncProfile]) -> None:
        self._set_paused(request, queryset, True)

    @admin.action(description=gettext_lazy("Resume"), permissions=["change"])
    def resume_jobs(self, request: HttpRequest, queryset: QuerySet[SyncProfile]) -> None:
        self._set_paused(request, queryset, False)

    # --- force resync, after a confirmation page ----------------------------------------------
    @admin.action(description=gettext_lazy("Force resync (forget the sync state)…"),
                  permissions=["change"])
    def force_resync(self, request: HttpRequest,
                     queryset: QuerySet[SyncProfile]) -> HttpResponse | None:
        profiles = list(queryset)
        if request.POST.get("confirmed") == "yes":
            self._do_force_resync(request, profiles)
            return None
        return self._confirmation(request, profiles, action_form=True)

    def force_resync_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        profile = self._profile(request, object_id)
        if request.method == "POST" and request.POST.get("confirmed") == "yes":
            self._do_force_resync(request, [profile])
            return HttpResponseRedirect(self._change_url(profile))
        return self._confirmation(request, [profile], action_form=False)

    def _confirmation(self, request: HttpRequest, profiles: list[SyncProfile],
                      action_form: bool) -> TemplateResponse:
        rows = [(profile, agenda, Agenda(agenda).label, resync.state_counts(profile.pk, agenda))
                for profile in profiles for agenda in jobs.enabled_agendas(profile)]
        opts = self.opts  # type: ignore[attr-defined]
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": _("Force resync: are you sure?"),
            "opts": opts,
            "rows": rows,
            "profiles": profiles,
            "action_form": action_form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/engine/force_resync_confirmation.html", context)

    def _do_force_resync(self, request: HttpRequest, profiles: list[SyncProfile]) -> None:
        for profile in profiles:
            for agenda in jobs.enabled_agendas(profile):
                values = {"profile": profile, "agenda": Agenda(agenda).label}
                if resync.force_resync(profile.pk, agenda) is None:
                    self.message_user(request, _(  # type: ignore[attr-defined]
                        "“%(profile)s” (%(agenda)s) is syncing right now: nothing was "
                        "forgotten. Try again when the run has finished.") % values,
                        messages.WARNING)
                    continue
                if not profile.active:
                    self.message_user(request, _(  # type: ignore[attr-defined]
                        "“%(profile)s” (%(agenda)s): the sync state is forgotten; the profile "
                        "is inactive, so the full sync runs once it is made active.") % values,
                        messages.WARNING)
                    continue
                if pausing.is_paused(profile.pk, agenda):
                    # Queued now, it would only be recorded as not started.
                    self.message_user(request, _(  # type: ignore[attr-defined]
                        "“%(profile)s” (%(agenda)s): the sync state is forgotten; the agenda "
                        "is paused, so its full sync runs once you resume it.") % values,
                        messages.WARNING)
                    continue
                try:
                    jobs.enqueue(profile, agenda, trigger="resync")
                except Exception as exc:
                    values["error"] = exc
                    self.message_user(request, _(  # type: ignore[attr-defined]
                        "“%(profile)s” (%(agenda)s): the sync state is forgotten, but the "
                        "sync could not be queued (%(error)s); it runs at its next scheduled "
                        "time.") % values, messages.WARNING)
                    continue
                self.message_user(request, _(  # type: ignore[attr-defined]
                    "“%(profile)s” (%(agenda)s): the sync state is forgotten and a full sync "
                    "is queued.") % values, messages.SUCCESS)


def _labels(agendas: list[str]) -> str:
    return ", ".join(str(Agenda(agenda).label) for agenda in agendas)
