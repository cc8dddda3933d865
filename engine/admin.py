"""The sync history, the links and the duplicate candidates in the admin (read-mostly)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from engine import jobs, pausing
from engine.models import Agenda, DuplicateCandidate, Job, Link, Run, RunItem
from engine.reasons import describe
from profiles.admin_scoping import OrganizationScopedAdmin


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RunItemInline(ReadOnlyMixin, admin.TabularInline):
    model = RunItem
    fields = ["action", "title", "reason", "crm_key", "remote_id"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    @admin.display(description=_("Reason or error"))
    def reason(self, item: RunItem) -> str:
        return item.reason


# Run fields shown through a method: the trigger is a code, the messages are in English.
RUN_FIELDS_IN_WORDS = {"trigger": "started_by", "message": "message_shown",
                       "progress_note": "doing_now"}


class TriggerFilter(admin.SimpleListFilter):
    """Who or what started the runs, in words (Run.trigger holds a code)."""

    title = _("started by")
    parameter_name = "trigger"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(code, str(label)) for code, label in Run.TRIGGERS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        return queryset.filter(trigger=self.value()) if self.value() else queryset


@admin.register(Run)
class RunAdmin(ReadOnlyMixin, OrganizationScopedAdmin):
    # The counts two to a column (created / updated / deleted), so that the list fits a
    # 1366-px-wide screen; a run's page has every count by its name.
    list_display = ["started", "profile", "agenda", "kind", "status", "in_crm", "in_exchange",
                    "conflicts", "errors"]
    list_filter = ["status", "agenda", "kind", TriggerFilter]
    list_select_related = ["profile"]
    search_fields = ["profile__mailbox", "message"]
    date_hierarchy = "started"
    inlines = [RunItemInline]
    actions = ["approve_deletions"]
    readonly_fields = [RUN_FIELDS_IN_WORDS.get(f.name, f.name) for f in Run._meta.fields]
    exclude = list(RUN_FIELDS_IN_WORDS)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    @admin.display(description=_("CRM: created / updated / deleted"))
    def in_crm(self, run: Run) -> str:
        return f"{run.crm_created} / {run.crm_updated} / {run.crm_deleted}"

    @admin.display(description=_("Exchange: created / updated / deleted"))
    def in_exchange(self, run: Run) -> str:
        return f"{run.remote_created} / {run.remote_updated} / {run.remote_deleted}"

    @admin.display(description=_("started by"))
    def started_by(self, run: Run) -> str:
        return run.get_trigger_display()

    @admin.display(description=_("message"))
    def message_shown(self, run: Run) -> str:
        return describe(run.message)

    @admin.display(description=_("doing now"))
    def doing_now(self, run: Run) -> str:
        return describe(run.progress_note)

    @admin.action(description=_("Approve the deletions or creations these runs stopped before"))
    def approve_deletions(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        """The mass-deletion and mass-creation guards' approval (one for both: the next run
        carries out all that waits)."""
        waiting = queryset.filter(status=Run.Status.WAITING, approved_at__isnull=True)
        approved = list(waiting.select_related("profile"))
        count = Run.objects.filter(pk__in=[run.pk for run in approved]).update(
            approved_by=request.user, approved_at=timezone.now())
        if count:
            # What was approved is carried out by a sync queued now, not at the next
            # scheduled time (one per agenda, however many of its runs were approved).
            for profile, agenda in {(run.profile, run.agenda) for run in approved}:
                if pausing.is_paused(profile.pk, agenda):
                    # Queued now, it would only be recorded as not started.
                    self.message_user(request, _(
                        "“%(profile)s” (%(agenda)s) is paused: what was approved is carried "
                        "out by its first run after Resume.") % {
                        "profile": profile, "agenda": Agenda(agenda).label}, messages.WARNING)
                    continue
                try:
                    jobs.enqueue(profile, agenda, trigger="approval")
                except Exception:
                    self.message_user(request, _(
                        "Could not queue the sync of “%(profile)s”: it runs at its next "
                        "scheduled time.") % {"profile": profile}, messages.WARNING)
            self.message_user(request, ngettext(
                "Approved %(count)d run: what it stopped before is carried out by a sync "
                "queued now.",
                "Approved %(count)d runs: what they stopped before is carried out by syncs "
                "queued now.",
                count) % {"count": count}, messages.SUCCESS)
        else:
            self.message_user(request, _("None of the chosen runs waits for approval."),
                              messages.WARNING)


@admin.register(Link)
class LinkAdmin(ReadOnlyMixin, OrganizationScopedAdmin):
    list_display = ["title", "profile", "agenda", "state", "crm_key", "updated"]
    list_filter = ["agenda", "state"]
    list_select_related = ["profile"]
    search_fields = ["title", "crm_key", "remote_id", "profile__mailbox"]
    readonly_fields = ["profile", "agenda", "title", "state", "crm_key", "crm_version",
                       "remote_id", "remote_version", "remote_uid", "created", "updated"]
    exclude = ["crm_snapshot", "remote_snapshot", "crm_hash", "remote_hash"]


@admin.register(DuplicateCandidate)
class DuplicateCandidateAdmin(OrganizationScopedAdmin):
    list_display = ["crm_title", "remote_title", "shared", "profile", "decision", "found"]
    list_filter = ["decision", "agenda"]
    list_select_related = ["profile"]
    search_fields = ["crm_title", "remote_title", "address", "profile__mailbox"]
    readonly_fields = ["profile", "agenda", "crm_key", "remote_id", "shared", "crm_title",
                       "remote_title", "found", "decided"]
    fields = [*readonly_fields, "decision"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("shared address"), ordering="address")
    def shared(self, candidate: DuplicateCandidate) -> str:
        return candidate.shared

    def save_model(self, request: HttpRequest, obj: DuplicateCandidate, form: Any,
                   change: bool) -> None:
        obj.decided = timezone.now() if obj.decision != obj.Decision.OPEN else None
        super().save_model(request, obj, form, change)


@admin.register(Job)
class JobAdmin(ReadOnlyMixin, OrganizationScopedAdmin):
    """Every scheduled job, to find the failing and paused ones across profiles."""

    # When it last ran and when it alerted are on the job's page: the list fits 1366 px.
    list_display = ["profile", "agenda", "next_run_at", "paused", "last_status",
                    "last_success_at", "consecutive_failures"]
    list_filter = ["paused", "agenda", "last_status"]
    list_select_related = ["profile"]
    search_fields = ["profile__mailbox", "last_message"]
    readonly_fields = [f.name if f.name != "last_message" else "last_message_shown"
                       for f in Job._meta.fields]
    exclude = ["last_message"]   # written in English: shown through the reason registry
    actions = ["pause", "resume"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False   # jobs follow the profiles' switches; deleting one would only recreate it

    @admin.display(description=_("last message"))
    def last_message_shown(self, job: Job) -> str:
        return describe(job.last_message)

    @admin.action(description=_("Pause the selected jobs"), permissions=["view"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        count = queryset.update(paused=True)
        self.message_user(request, ngettext("Paused %(count)d job.", "Paused %(count)d jobs.",
                                            count) % {"count": count}, messages.SUCCESS)

    @admin.action(description=_("Resume the selected jobs"), permissions=["view"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        count = queryset.update(paused=False)
        self.message_user(request, ngettext("Resumed %(count)d job.", "Resumed %(count)d jobs.",
                                            count) % {"count": count}, messages.SUCCESS)
