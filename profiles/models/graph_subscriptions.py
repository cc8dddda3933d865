"""What the server keeps of Microsoft Graph change notifications (engine/graph_watch.py):

- `GraphSubscription`: one Graph subscription per synced folder of an active Graph profile,
  with its random clientState (encrypted, as every secret is), its expiry, what went wrong
  last and how many notifications were refused for a wrong clientState;
- `GraphNotification`: the journal of accepted notifications and lifecycle events. The web
  request only writes a row (engine/graph_hooks.py); the listener reads the journal every
  second and queues the syncs, so no sync work is ever done in the request.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from profiles import secrets


class GraphSubscription(models.Model):
    profile = models.ForeignKey("profiles.SyncProfile", on_delete=models.CASCADE,
                                related_name="graph_subscriptions")
    agenda = models.CharField(max_length=10)
    folder_id = models.CharField(max_length=512)
    resource = models.CharField(max_length=1000)
    # Where Graph posts: made again when PUBLIC_BASE_URL changes.
    notification_url = models.CharField(max_length=500, blank=True)
    # Graph's id; blank while none could be made (last_error says why).
    subscription_id = models.CharField(max_length=200, blank=True, db_index=True)
    expires = models.DateTimeField(null=True, blank=True)
    client_state = models.TextField(editable=False)
    created = models.DateTimeField(auto_now_add=True)
    renewed = models.DateTimeField(null=True, blank=True)
    # Set by a lifecycle event: renew now (reauthorizationRequired), make it again
    # (subscriptionRemoved). The manager acts on it within a second or two.
    renew_now = models.BooleanField(default=False)
    removed = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    # Notifications carrying a wrong clientState: counted, so a forged or misdirected
    # sender shows in the admin and in the logs.
    refused = models.PositiveIntegerField(default=0)
    last_refused = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["profile", "folder_id"],
                                               name="graph_subscription_per_folder")]
        verbose_name = _("Graph subscription")
        verbose_name_plural = _("Graph subscriptions")

    def __str__(self) -> str:
        return self.resource

    def get_secret(self) -> str:
        return secrets.decrypt(self.client_state)

    def set_secret(self, value: str) -> None:
        self.client_state = secrets.encrypt(value)


class GraphNotification(models.Model):
    """One accepted notification: which profile's agenda to sync. The profile is the one
    whose subscription took it, never a name in the payload (tenant walls)."""

    CHANGE, MISSED = "change", "missed"

    received = models.DateTimeField(auto_now_add=True, db_index=True)
    profile = models.ForeignKey("profiles.SyncProfile", on_delete=models.CASCADE,
                                related_name="+")
    agenda = models.CharField(max_length=10)
    kind = models.CharField(max_length=20, default=CHANGE)

    class Meta:
        indexes = [models.Index(fields=["received", "profile"], name="graph_note_received")]

    def __str__(self) -> str:
        return f"{self.kind} {self.agenda} of profile {self.profile_id}"
