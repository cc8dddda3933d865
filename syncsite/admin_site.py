"""The admin site, with its index in the order an administrator works through it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest

# What an administrator sets up first comes first; the background-task tables, read when
# something went wrong, come last. Apps not named here follow in alphabetical order.
APP_ORDER = ("profiles", "engine", "crm", "auth", "security", "django_q")


class SyncAdminSite(admin.AdminSite):
    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        apps = super().get_app_list(request, app_label)   # alphabetical by name

        def position(app: dict[str, Any]) -> int:
            label = app["app_label"]
            return APP_ORDER.index(label) if label in APP_ORDER else len(APP_ORDER)

        return sorted(apps, key=position)   # stable: the rest stay alphabetical


class SyncAdminConfig(AdminConfig):
    default_site = "syncsite.admin_site.SyncAdminSite"
