"""Failed sign-ins, kept for the throttling window (security.throttle)."""

from __future__ import annotations

from django.db import models


class SignInFailure(models.Model):
    class Scope(models.TextChoices):
        ACCOUNT = "account", "account"
        ADDRESS = "address", "client address"

    scope = models.CharField(max_length=10, choices=Scope.choices)
    # A keyed hash of the user name typed or of the client address, never the text itself:
    # people type their password into the user name field now and then.
    key = models.CharField(max_length=64)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["scope", "key", "at"]), models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"{self.scope} {self.key[:8]}… at {self.at:%Y-%m-%d %H:%M:%S}"
