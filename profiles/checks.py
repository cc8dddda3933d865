"""System checks: configuration errors are told at start-up in plain words, not as tracebacks."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core import checks

from profiles.secrets import SecretKeyError, current_keys


@checks.register(checks.Tags.security)
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        current_keys()
    except SecretKeyError as exc:
        return [checks.Error(str(exc), id="profiles.E001")]
    return []


@checks.register()
def check_attachment_roots(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"ATTACHMENT_ROOTS entry {root!r} is not an absolute path.",
            id="profiles.E002",
        )
        for root in settings.ATTACHMENT_ROOTS
        if not os.path.isabs(root)
    ]
