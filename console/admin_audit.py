"""The audit log in the admin: read-only, scoped like everything else (profiles.admin_scoping)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from profiles.admin_scoping import OrganizationScopedAdmin
from profiles.models import AuditEntry


def _value_text(value: Any) -> str:
    if value is None or value == "":
        return gettext("(empty)")
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _change_text(name: str, change: Any) -> str:
    if isinstance(change, dict) and change.keys() == {"from", "to"}:
        return gettext("%(field)s: %(before)s → %(after)s") % {
            "field": name, "before": _value_text(change["from"]),
            "after": _value_text(change["to"])}
    return f"{name}: {_value_text(change)}"


class ObjectTypeFilter(admin.SimpleListFilter):
    """The kinds of object logged, in the reader's language (stored in English)."""

    title = _("object type")
    parameter_name = "object_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        types = model_admin.get_queryset(request).values_list("object_type", flat=True)
        return [(name, gettext(name)) for name in sorted(set(types))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(object_type=self.value()) if self.value() else queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(OrganizationScopedAdmin):
    list_display = ["at", "who", "action", "kind", "object_repr", "organization"]
    list_filter = ["action", ObjectTypeFilter, "organization"]
    search_fields = ["actor_name", "object_repr", "object_id"]
    date_hierarchy = "at"
    fields = ["at", "who", "organization", "action", "kind", "object_id", "object_repr",
              "what"]
    readonly_fields = fields

    @admin.display(description=_("who"), ordering="actor_name")
    def who(self, entry: AuditEntry) -> str:
        return entry.actor_name or gettext("the server (command or task)")

    @admin.display(description=_("object type"), ordering="object_type")
    def kind(self, entry: AuditEntry) -> str:
        return gettext(entry.object_type)

    @admin.display(description=_("what"))
    def what(self, entry: AuditEntry) -> SafeString:
        """One line a field, "field: before → after", as a person reads a change."""
        return format_html_join("", "<div>{}</div>", (
            (_change_text(name, change),) for name, change in entry.changes.items()))

    # The log is written by the server only: nobody adds, edits or removes an entry.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
