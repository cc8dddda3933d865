"""Failed sign-ins, kept for the throttling window (security.throttle)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class SignInFailure(models.Model):
    class Scope(models.TextChoices):
        ACCOUNT = "account", _("account")
        ADDRESS = "address", _("client address")

    scope = models.CharField(_("counted by"), max_length=10, choices=Scope.choices)
    # A keyed hash of the user name typed or of the client address, never the text itself:
    # people type their password into the user name field now and then.
    key = models.CharField(_("key"), max_length=64)
    at = models.DateTimeField(_("at"))

    class Meta:
        indexes = [models.Index(fields=["scope", "key", "at"]), models.Index(fields=["at"])]
        verbose_name = _("failed sign-in")
        verbose_name_plural = _("failed sign-ins")

    def __str__(self) -> str:
        return f"{self.scope} {self.key[:8]}… at {self.at:%Y-%m-%d %H:%M:%S}"
