from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SyncsiteConfig(AppConfig):
    name = "syncsite"
    verbose_name = _("Sync server")
