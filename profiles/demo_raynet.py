"""The demo's second organization, "Raynet demo": its CRM is a Raynet instance on raynetsim
(started by `manage.py serve --demo-mailbox` beside ewsim), and its profile syncs the demo
mailbox of Petra Králová, both ways (contacts and calendar).

raynetsim makes the instance and its API user at start (`--instance … --user … --api-key …`,
kept in var/ from one run to the next) and fills it with a few records (`--seed demo`), so an
administrator sees changes coming from Raynet as well as going there. The API user is Petra:
her CRM user's login is its e-mail, so what the sync creates is hers in Raynet.

An installation whose SYNC_CRM_KINDS leaves out the Raynet kind gets no such organization.
"""

from __future__ import annotations

import secrets
import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from crm.models import CrmUser
from ewsim.seed import PETRA, SERVICE, USERS
from profiles import crm_kinds
from profiles.models import CrmConnection, MailboxConnection, Membership, Organization, SyncProfile

ORGANIZATION = "Raynet demo"
CONNECTION = "Demo mailbox (ewsim)"
RAYNET_ADDRESS = "127.0.0.1:8766"
INSTANCE = "raynet-demo"
API_USER = PETRA
# The simulator's demo instance only, on this machine: not a secret worth keeping.
API_KEY = "raynet-demo-api-key"
STATE_FILE = "raynetsim-demo.json"


def api_url(address: str = RAYNET_ADDRESS) -> str:
    return f"http://{address}/api/v2/"


def raynetsim_command(host: str, port: str) -> list[str]:
    """raynetsim with the demo instance, kept in var/ from one run to the next."""
    return [sys.executable, "-m", "raynetsim", "--host", host, "--port", port,
            "--state", str(settings.VAR_DIR / STATE_FILE), "--instance", INSTANCE,
            "--user", API_USER, "--api-key", API_KEY, "--full-name", USERS[PETRA][1],
            "--seed", "demo"]


def set_up(ews_url: str, raynet_url: str) -> tuple[str, dict[str, str]]:
    """Make the organization unless it exists; (what happened, new logins → passwords)."""
    if not crm_kinds.is_known("raynet"):
        return ("The Raynet demo is not set up: SYNC_CRM_KINDS does not offer the Raynet kind "
                "of CRM.", {})
    with transaction.atomic():
        organization, created = Organization.objects.get_or_create(name=ORGANIZATION)
        if not created:
            return f"The demo organization {ORGANIZATION!r} exists already.", {}
        crm = CrmConnection.objects.get(organization=organization)
        crm.kind = "raynet"
        crm.settings = {"base_url": raynet_url, "instance": INSTANCE, "user": API_USER}
        crm.update_secrets({"api_key": API_KEY})
        crm.full_clean()
        crm.save()
        mailbox = MailboxConnection(
            organization=organization, name=CONNECTION, kind=MailboxConnection.Kind.EWS,
            ews_url=ews_url, auth_type=MailboxConnection.Auth.NTLM,
            access=MailboxConnection.Access.IMPERSONATION, username=SERVICE)
        mailbox.set_secret(USERS[SERVICE][0])
        mailbox.full_clean()
        mailbox.save()
        _, display_name, login = USERS[PETRA]
        password = secrets.token_urlsafe(9)
        user = get_user_model().objects.create_user(
            username=login, email=PETRA, password=password,
            first_name=display_name.split()[0], last_name=display_name.split()[-1])
        Membership.objects.create(user=user, organization=organization,
                                  role=Membership.Role.USER)
        crm_user = CrmUser.objects.create(organization=organization, name=display_name,
                                          login=API_USER, email=PETRA)
        # No e-mail import: Raynet does not take e-mails yet (docs/raynet.md).
        SyncProfile.objects.create(organization=organization, user=user, mailbox=PETRA,
                                   crm_user=crm_user, connection=mailbox, import_mail=False)
    return (f"Demo organization {ORGANIZATION!r} created: Raynet instance {INSTANCE!r} at "
            f"{raynet_url}, synced with the demo mailbox {PETRA}.", {login: password})
