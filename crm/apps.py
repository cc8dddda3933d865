from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM (built-in store)"

    def ready(self) -> None:
        from crm import signals

        signals.connect()
