"""E-mail import is tested against ewsim over loopback HTTP, like the other agendas."""

from __future__ import annotations

from pathlib import Path

from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import Organization, SyncProfile
from tests.engine.conftest import access, mailbox  # noqa: F401 (fixtures)


def give_roots(profile: SyncProfile | Organization, *roots: Path) -> None:
    """The profile's organization may save attachments below `roots`, as a superuser would set
    them (they must lie inside the server's ATTACHMENT_ROOTS of the moment)."""
    organization = profile if isinstance(profile, Organization) else profile.organization
    organization.attachment_roots = "\n".join(str(root) for root in roots)
    organization.full_clean()
    organization.save(update_fields=["attachment_roots"])
