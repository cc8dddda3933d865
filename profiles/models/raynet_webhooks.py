"""Raynet webhooks: the hook a CRM connection registered with its Raynet instance, and the
journal of the events Raynet delivered to it.

The hook's secret (the `X-RAYNETCRM-Token` Raynet sends with every delivery) is stored
encrypted, as the connection's own secrets are. A hook belongs to the instance it was
registered with: once the connection reaches another instance or kind, its deliveries are
refused until it is registered again.

The journal is read by the listener (engine/crmstore/raynet_watch.py), which queues the
syncs an event concerns, and by the Raynet backend, which takes the deletions it lists for
deletions (engine/crmstore/raynet_webhooks.py, `deleted_since`).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from profiles import secrets


class RaynetWebhook(models.Model):
    connection = models.OneToOneField(
        "profiles.CrmConnection", on_delete=models.CASCADE, related_name="raynet_webhook",
        verbose_name=_("CRM connection"))
    instance = models.CharField(_("Raynet instance"), max_length=200)
    base_url = models.CharField(_("API address"), max_length=500)
    hook_id = models.CharField(_("Raynet's id of the webhook"), max_length=64, blank=True)
    url = models.CharField(_("address Raynet posts to"), max_length=500)
    secret_token = models.TextField(editable=False)
    registered = models.DateTimeField(_("registered"), auto_now=True)
    # Deliveries refused (wrong or missing token): counted, so a misdirected or forged
    # sender shows in the admin and in the logs.
    refused = models.PositiveIntegerField(_("deliveries refused"), default=0)
    last_refused = models.DateTimeField(_("last refused"), null=True, blank=True)

    class Meta:
        verbose_name = _("Raynet webhook")
        verbose_name_plural = _("Raynet webhooks")

    def __str__(self) -> str:
        return self.url

    def get_secret(self) -> str:
        return secrets.decrypt(self.secret_token)

    def set_secret(self, value: str) -> None:
        self.secret_token = secrets.encrypt(value)


class RaynetWebhookEvent(models.Model):
    """One delivery Raynet made: which record of which organization was created, changed
    or deleted. The organization is the one whose hook took the delivery, never a name in
    the payload."""

    organization = models.ForeignKey("profiles.Organization", on_delete=models.CASCADE,
                                     related_name="+")
    received = models.DateTimeField(auto_now_add=True, db_index=True)
    event = models.CharField(max_length=40)          # record.created|updated|deleted
    entity = models.CharField(max_length=40)         # person, company, meeting... (lower case)
    entity_id = models.BigIntegerField()
    event_id = models.CharField(max_length=64, blank=True)   # Raynet's, to drop a repeat

    class Meta:
        indexes = [models.Index(fields=["organization", "entity", "received"])]
        constraints = [models.UniqueConstraint(
            fields=["organization", "event_id"], condition=~models.Q(event_id=""),
            name="raynet_webhook_event_once")]

    def __str__(self) -> str:
        return f"{self.event} {self.entity} {self.entity_id}"
