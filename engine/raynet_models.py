"""What the Raynet backend keeps about one Raynet instance, shared by every profile and
process reaching it (engine/crmstore/raynet_cursor.py, raynet_budget.py):

- `RaynetInstance`: the instance's daily request budget as Raynet's latest answer told it,
  and when each entity's ids were last compared in full with the journal;
- `RaynetKnownRecord`: the journal of known ids: every record the sync saw or created, and
  when one was found gone. Deletions are reported from it, so a record created after a
  cursor and deleted before the next read is reported too.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class RaynetInstance(models.Model):
    # "<API host>/<instance name>": one row however many connections or profiles reach it.
    key = models.CharField(max_length=300, unique=True)
    limit = models.IntegerField(null=True, blank=True)
    remaining = models.IntegerField(null=True, blank=True)
    resets_at = models.DateTimeField(null=True, blank=True)
    budget_read_at = models.DateTimeField(null=True, blank=True)
    # entity -> ISO time of its last full comparison of ids.
    compared = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("Raynet instance")
        verbose_name_plural = _("Raynet instances")

    def __str__(self) -> str:
        return self.key


class RaynetKnownRecord(models.Model):
    instance = models.ForeignKey(RaynetInstance, on_delete=models.CASCADE, related_name="known")
    entity = models.CharField(max_length=40)
    record_id = models.BigIntegerField()
    # When it was found gone (deleted, or no longer listed); null while it exists.
    gone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("record known in Raynet")
        verbose_name_plural = _("records known in Raynet")
        constraints = [models.UniqueConstraint(fields=["instance", "entity", "record_id"],
                                               name="raynet_known_once")]
        indexes = [models.Index(fields=["instance", "entity", "gone_at"],
                                name="raynet_known_gone")]

    def __str__(self) -> str:
        return f"{self.entity}:{self.record_id}"
