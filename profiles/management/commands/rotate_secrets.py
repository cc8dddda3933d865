"""Re-encrypt every stored secret with the first key in ENCRYPTION_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from profiles.models import (
    CrmConnection,
    GraphSubscription,
    MailboxConnection,
    Organization,
    RaynetWebhook,
    SyncProfile,
)
from profiles.secrets import SecretKeyError, reencrypt

# Every encrypted column in the project: (model, field).
ENCRYPTED_COLUMNS = [
    (MailboxConnection, "secret_token"),
    (SyncProfile, "mailbox_secret_token"),
    (CrmConnection, "secret_token"),
    (RaynetWebhook, "secret_token"),
    (GraphSubscription, "client_state"),
    (Organization, "share_secret"),   # its attachment share's password
]


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret with the first key of ENCRYPTION_KEYS, so older keys "
        "can then be removed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        try:
            with transaction.atomic():
                for model, field in ENCRYPTED_COLUMNS:
                    rows = model.objects.exclude(**{field: ""}).select_for_update()
                    for pk, token in rows.values_list("pk", field):
                        model.objects.filter(pk=pk).update(**{field: reencrypt(token)})
                        total += 1
        except SecretKeyError as exc:
            raise CommandError(f"Nothing was changed: {exc}") from exc
        self.stdout.write(f"Re-encrypted {total} secret(s) with the first key of ENCRYPTION_KEYS.")
