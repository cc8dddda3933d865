"""System checks: configuration errors are told at start-up in plain words, not as tracebacks."""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import DEFAULT_DB_ALIAS, DatabaseError

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


@checks.register(checks.Tags.database)
def check_organization_attachment_roots(
    app_configs: Any = None, databases: Collection[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Roots saved before the operator narrowed ATTACHMENT_ROOTS, or written into the database
    by hand, are refused by the workers; this says so before a run fails. Warnings, not
    errors: `migrate` runs this check, and must still run on a server with such roots."""
    if not databases or DEFAULT_DB_ALIAS not in databases:
        return []
    from profiles.models import MailSettings, Organization

    try:
        organizations = list(Organization.objects.only("name", "attachment_roots",
                                                       "attachment_storage"))
        saving = set(MailSettings.objects.filter(save_attachments=True)
                     .values_list("profile__organization_id", flat=True))
    except DatabaseError:
        return []   # not migrated yet: `migrate` checks before it adds the column
    messages: list[checks.CheckMessage] = []
    for organization in organizations:
        others = [o for o in organizations if o.pk != organization.pk]
        for problem in organization.attachment_root_problems(others):
            messages.append(checks.Warning(
                f"Organization {organization.name!r}: {' '.join(problem.messages)}",
                hint="A superuser corrects its attachment roots in the admin; until then its "
                     "profiles cannot save attachments there.",
                id="profiles.W003"))
        if organization.pk in saving and not organization.approved_attachment_roots():
            messages.append(checks.Warning(
                f"Organization {organization.name!r} has profiles that save attachments but "
                f"no attachment roots inside ATTACHMENT_ROOTS: their e-mail import fails.",
                hint="A superuser sets the organization's attachment roots in the admin.",
                id="profiles.W004"))
    return messages
