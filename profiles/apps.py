from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "profiles"
    verbose_name = "Sync configuration"

    def ready(self) -> None:
        from profiles import checks  # noqa: F401  (registers the system checks)
