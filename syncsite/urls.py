from django.contrib import admin
from django.urls import path

from engine import monitoring

admin.site.site_header = "Exchange ↔ CRM sync server"
admin.site.site_title = "Sync server"
admin.site.index_title = "Configuration"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", monitoring.healthz, name="healthz"),
    path("metrics", monitoring.metrics, name="metrics"),
]
