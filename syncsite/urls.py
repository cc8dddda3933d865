from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from engine import monitoring
from engine.raynet_hooks import raynet_webhook

admin.site.site_header = _("Exchange ↔ CRM sync server")
admin.site.site_title = _("Sync server")
admin.site.index_title = _("Configuration")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", monitoring.healthz, name="healthz"),
    path("metrics", monitoring.metrics, name="metrics"),
    # Raynet posts its record changes here (engine/crmstore/raynet_webhooks.py).
    path("hooks/raynet/<int:connection_id>/", raynet_webhook, name="raynet_webhook"),
    # The language switch (set_language): the choice is kept in a cookie.
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("portal.urls")),
]
