"""The audit log in the admin: read-only, scoped like everything else (admin_scoping)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from profiles.admin_scoping import OrganizationScopedAdmin
from profiles.models import AuditEntry


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

    @admin.display(description="what")
    def what(self, entry: AuditEntry) -> str:
        return format_html("<pre>{}</pre>", json.dumps(entry.changes, indent=2,
                                                       ensure_ascii=False, default=str))

    # The log is written by the server only: nobody adds, edits or removes an entry.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
