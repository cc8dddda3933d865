"""A profile's `updated` stamp covers what hangs off it: its agenda settings and mail folders.

The listener (`engine/listen.py`) reads the newest stamp every second to notice, within
seconds, a profile whose folders changed. A settings row saved without its profile (a form of
one agenda, a script, the admin's inline alone) must move the stamp as well, or the listener
would learn of the change only at its next full refresh.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from profiles.models import (
    CalendarSettings,
    ContactSettings,
    MailFolder,
    MailSettings,
    SyncProfile,
)

PARTS = (CalendarSettings, ContactSettings, MailSettings, MailFolder)


def touch_profile(sender: type, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return   # loading fixtures: the profile's own row carries its stamp
    # An UPDATE, not profile.save(): no second round of the profile's own signals.
    SyncProfile.objects.filter(pk=instance.profile_id).update(updated=timezone.now())


def connect() -> None:
    for model in PARTS:
        uid = f"freshness-{model._meta.label_lower}"
        post_save.connect(touch_profile, sender=model, dispatch_uid=uid)
        post_delete.connect(touch_profile, sender=model, dispatch_uid=uid)
