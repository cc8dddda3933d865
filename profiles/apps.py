from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "profiles"
    verbose_name = "Sync configuration"

    def ready(self) -> None:
        from profiles import audit, checks  # noqa: F401  (checks: registers the system checks)

        audit.connect()
