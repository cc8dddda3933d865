"""System checks of the security settings: a malformed entry is told at start-up in words."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from security.outbound import parse_networks


@checks.register(checks.Tags.security)
def check_allowed_networks(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors = []
    for entry in settings.MAILBOX_ALLOWED_NETWORKS:
        try:
            parse_networks([entry])
        except ValueError:
            errors.append(checks.Error(
                f"MAILBOX_ALLOWED_NETWORKS entry {entry!r} is not a network in CIDR notation "
                "(e.g. 10.20.0.0/16 or 127.0.0.1/32).", id="security.E001"))
    return errors
