"""The audit log in the admin: read-only, scoped like everything else (admin_scoping)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from profiles.admin_scoping import OrganizationScopedAdmin
from profiles.models import AuditEntry


def _value_text(value: Any) -> str:
    if value is None or value == "":
        return _("(empty)")
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _change_text(name: str, change: Any) -> str:
    if isinstance(change, dict) and change.keys() == {"from", "to"}:
        return _("%(field)s: %(before)s → %(after)s") % {
            "field": name, "before": _value_text(change["from"]),
            "after": _value_text(change["to"])}
    return f"{name}: {_value_text(change)}"


@admin.register(AuditEntry)
class AuditEntryAdmin(OrganizationScopedAdmin):
    list_display = ["at", "who", "action", "object_type", "object_repr", "organization"]
    list_filter = ["action", "object_type", "organization"]
    search_fields = ["actor_name", "object_repr", "object_id"]
    date_hierarchy = "at"
    fields = ["at", "who", "organization", "action", "object_type", "object_id", "object_repr",
              "what"]
    readonly_fields = fields

    @admin.display(description="who", ordering="actor_name")
    def who(self, entry: AuditEntry) -> str:
        return entry.actor_name or "the server (command or task)"

    @admin.display(description=gettext_lazy("what"))
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
