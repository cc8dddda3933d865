from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SecurityConfig(AppConfig):
    name = "security"
    verbose_name = _("Security")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from security import checks, log_redaction  # noqa: F401  (checks: registers them)

        log_redaction.install()

        # The admin's own sign-in page is throttled like the user pages' one.
        from django.contrib import admin

        from security.forms import ThrottledAdminAuthenticationForm

        admin.site.login_form = ThrottledAdminAuthenticationForm
