from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    """The pages users sign in to: dashboard, sync history, duplicates report."""

    name = "portal"
    verbose_name = _("User pages")
