"""Change-list columns of the configuration admin that say in one column what took several,
so that the lists fit a 1366-px-wide screen."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from profiles.models import SyncProfile


@admin.display(description=gettext_lazy("synced"))
def synced_agendas(profile: SyncProfile) -> str:
    """"Calendar, contacts, e-mail import" instead of three yes/no columns."""
    names = [name for on, name in ((profile.sync_calendar, _("calendar")),
                                   (profile.sync_contacts, _("contacts")),
                                   (profile.import_mail, _("e-mail import"))) if on]
    return ", ".join(names) or _("nothing")
