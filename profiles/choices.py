"""The sync's policies, one definition each: what an administrator chooses in the admin (the
value stored, with its label) is the very value the planner (engine/planner.py) decides by.

Kept apart from the models so that the planner, which needs no database, imports only these.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Direction(models.TextChoices):
    TWO_WAY = "two_way", _("Two-way")
    IMPORT = "import", _("Import: Exchange → CRM")
    EXPORT = "export", _("Export: CRM → Exchange")


class ConflictPolicy(models.TextChoices):
    NEWEST = "newest", _("Newest change wins")
    EXCHANGE = "exchange", _("Exchange wins")
    CRM = "crm", _("CRM wins")


class DeletionPolicy(models.TextChoices):
    PROPAGATE = "propagate", _("Delete on the other side too")
    UNLINK = "unlink", _("Only stop syncing the record")
