"""E-mail import is tested against ewsim over loopback HTTP, like the other agendas.

Helpers shared by the tests: raw MIME to deliver, a profile's mail settings, and a profile on
either kind of connection (Exchange Server over EWS, Exchange Online over Graph) imported
through the product's own entry point.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from crm.models import CrmUser
from engine.models import Run
from engine.sync import sync
from ewsim.testing import SimHandle, ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import Organization, SyncProfile
from tests.engine.conftest import access, mailbox  # noqa: F401 (fixtures)
from tests.engine.graph_sync_helpers import make_graph_profile
from tests.engine.sync_helpers import make_profile

NOW = dt.datetime.now(dt.UTC)


def mime(subject: str, sender: str = "Petr Svoboda <petr@stavby.cz>",
         to: str = "alice@example.com", message_id: str | None = None,
         attachments: tuple[tuple[str, bytes], ...] = (), days_ago: int = 1,
         date: dt.datetime | None = None, body: str = "Dobrý den,\nposílám podklady.\n"
         ) -> bytes:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    sent = date or NOW - dt.timedelta(days=days_ago)
    message["Date"] = sent.astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    if message_id:
        message["Message-ID"] = message_id
    message.set_content(body)
    for name, content in attachments:
        message.add_attachment(content, maintype="application", subtype="octet-stream",
                               filename=name)
    return message.as_bytes()


def settings_for(profile: SyncProfile, **values: object) -> None:
    mail = profile.mailsettings
    for name, value in values.items():
        setattr(mail, name, value)
    mail.save()


def give_roots(profile: SyncProfile | Organization, *roots: Path) -> None:
    """The profile's organization may save attachments below `roots`, as a superuser would set
    them (they must lie inside the server's ATTACHMENT_ROOTS of the moment)."""
    organization = profile if isinstance(profile, Organization) else profile.organization
    organization.attachment_roots = "\n".join(str(root) for root in roots)
    organization.full_clean()
    organization.save(update_fields=["attachment_roots"])


@pytest.fixture
def share(tmp_path: Path) -> Iterator[Path]:
    """An empty folder that is the server's only approved attachment root meanwhile."""
    root = tmp_path / "share"
    root.mkdir()
    with override_settings(ATTACHMENT_ROOTS=[str(root)]):
        yield root


@pytest.fixture(params=["ews", "graph"])
def connection_kind(request: pytest.FixtureRequest) -> str:
    """Each test taking it runs against Exchange Server (EWS) and Exchange Online (Graph)."""
    return str(request.param)


def mail_profile(sim: SimHandle, kind: str) -> SyncProfile:
    """Alice's profile on a connection of this kind."""
    return make_graph_profile(sim) if kind == "graph" else make_profile(sim)


def colleague(profile: SyncProfile, address: str = "bob@example.com",
              login: str = "bob") -> SyncProfile:
    """A second user of the organization, whose mailbox the same connection reaches."""
    return SyncProfile.objects.create(
        organization_id=profile.organization_id, mailbox=address,
        user=User.objects.create_user(login), connection=profile.connection,
        crm_user=CrmUser.objects.create(organization_id=profile.organization_id,
                                        name=login.title(), login=login))


def import_mail(profile: SyncProfile, **options: object) -> Run:
    """One import run through the product's entry point, as a worker would start it."""
    return sync(SyncProfile.objects.get(pk=profile.pk), "mail", **options)  # type: ignore[arg-type]
