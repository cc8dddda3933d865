"""The sync history, the links and the duplicate candidates in the admin (read-mostly)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from engine.models import DuplicateCandidate, Link, Run, RunItem
from profiles.admin_scoping import OrganizationScopedAdmin


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RunItemInline(ReadOnlyMixin, admin.TabularInline):
    model = RunItem
    fields = ["action", "title", "detail", "crm_key", "remote_id"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Run)
class RunAdmin(ReadOnlyMixin, OrganizationScopedAdmin):
    list_display = ["started", "profile", "agenda", "kind", "status", "crm_created",
                    "crm_updated", "crm_deleted", "remote_created", "remote_updated",
                    "remote_deleted", "conflicts", "errors", "duplicates", "requests"]
    list_filter = ["status", "agenda", "kind", "trigger"]
    list_select_related = ["profile"]
    search_fields = ["profile__mailbox", "message"]
    date_hierarchy = "started"
    inlines = [RunItemInline]
    actions = ["approve_deletions"]
    readonly_fields = [f.name for f in Run._meta.fields]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    @admin.action(description=_("Approve the deletions these runs stopped before"))
    def approve_deletions(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        waiting = queryset.filter(status=Run.Status.WAITING, approved_at__isnull=True)
        count = waiting.update(approved_by=request.user, approved_at=timezone.now())
        if count:
            self.message_user(request, ngettext(
                "Approved %(count)d run: its deletions are carried out by the next sync.",
                "Approved %(count)d runs: their deletions are carried out by the next sync.",
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
    list_display = ["crm_title", "remote_title", "address", "profile", "decision", "found"]
    list_filter = ["decision", "agenda"]
    list_select_related = ["profile"]
    search_fields = ["crm_title", "remote_title", "address", "profile__mailbox"]
    readonly_fields = ["profile", "agenda", "crm_key", "remote_id", "address", "crm_title",
                       "remote_title", "found", "decided"]
    fields = [*readonly_fields, "decision"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: DuplicateCandidate, form: Any,
                   change: bool) -> None:
        obj.decided = timezone.now() if obj.decision != obj.Decision.OPEN else None
        super().save_model(request, obj, form, change)
