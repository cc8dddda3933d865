from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "profiles"
    verbose_name = "Sync configuration"

    def ready(self) -> None:
        from profiles import audit, checks, freshness  # noqa: F401  (checks: registers them)

        audit.connect()
        freshness.connect()
