"""The audit log: who created, changed or deleted a connection or a profile, when, and what.

Values of ordinary fields are kept (before and after); a secret is only said to be set,
changed or removed, never stored in any form.
"""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        CREATE = "create", _("created")
        CHANGE = "change", _("changed")
        DELETE = "delete", _("deleted")

    organization_path = "organization"

    at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    # No database constraint: an entry outlives the user and the organization it names (an
    # organization's deletion writes the entries of its connections and profiles).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False,
        null=True, blank=True, related_name="+", verbose_name=_("who"))
    actor_name = models.CharField(
        _("who"), max_length=150, blank=True,
        help_text=_("The user name at the time; blank: the server itself (a command or task)."))
    organization = models.ForeignKey(
        "profiles.Organization", on_delete=models.DO_NOTHING, db_constraint=False,
        null=True, blank=True, related_name="+", verbose_name=_("organization"))
    action = models.CharField(_("action"), max_length=10, choices=Action.choices)
    object_type = models.CharField(_("object type"), max_length=100)
    object_id = models.CharField(_("object id"), max_length=64)
    object_repr = models.CharField(_("object"), max_length=300)
    changes = models.JSONField(_("what"), default=dict, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log")

    def __str__(self) -> str:
        who = self.actor_name or "server"
        return f"{self.at:%Y-%m-%d %H:%M} {who} {self.action} {self.object_type} {self.object_repr}"
