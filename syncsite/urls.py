from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _

from engine import monitoring
from engine.graph_hooks import graph_lifecycle, graph_notifications
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
    # Microsoft Graph posts its change notifications and lifecycle events here
    # (engine/graph_watch.py makes the subscriptions).
    path("hooks/graph/", graph_notifications, name="graph_notifications"),
    path("hooks/graph/lifecycle/", graph_lifecycle, name="graph_lifecycle"),
    # The language switch (set_language): the choice is kept in a cookie.
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("portal.urls")),
]
