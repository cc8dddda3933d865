from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ProfilesConfig(AppConfig):
    name = "profiles"
    verbose_name = _("Sync configuration")

    def ready(self) -> None:
        from profiles import audit, checks, freshness  # noqa: F401  (checks: registers them)

        audit.connect()
        freshness.connect()
