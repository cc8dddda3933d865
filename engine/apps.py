from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save
from django.utils.translation import gettext_lazy as _


class EngineConfig(AppConfig):
    name = "engine"
    verbose_name = _("Sync engine")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from engine import jobs
        from profiles.models import SyncProfile

        # The dispatcher's schedule exists after every `migrate`, on a fresh database too.
        post_migrate.connect(jobs.ensure_schedule, sender=self,
                             dispatch_uid="engine.ensure_schedule")
        post_save.connect(jobs.on_profile_saved, sender=SyncProfile,
                          dispatch_uid="engine.jobs_follow_profiles")
