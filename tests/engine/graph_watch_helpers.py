"""Graph profiles for the change-notification tests: organizations whose mailbox connection is
ewsim's Graph front door (app-only, as tests/engine/mailbox/graph_access.py signs in)."""

from __future__ import annotations

from django.contrib.auth.models import User

from crm.models import CrmUser
from ewsim.testing import SimHandle
from profiles.models import GraphSubscription, MailboxConnection, Organization, SyncProfile
from tests.engine.mailbox.graph_access import CLIENT_ID, CLIENT_SECRET, TENANT


def graph_profile(sim: SimHandle | None, name: str, mailbox: str) -> SyncProfile:
    """An active profile (contacts and calendar) on a Graph connection of its own
    organization; `sim` None: a connection that is never reached."""
    organization = Organization.objects.create(name=name)
    graph_url = sim.graph_url if sim is not None else "https://graph.invalid/v1.0"
    token_url = (f"{sim.https_base_url}/{TENANT}/oauth2/v2.0/token" if sim is not None
                 else "https://login.invalid/t/oauth2/v2.0/token")
    connection = MailboxConnection(organization=organization, name=f"{name} Graph", kind="graph",
                                   ews_url=graph_url, auth_type="oauth2", tenant_id=TENANT,
                                   client_id=CLIENT_ID, token_url=token_url, verify_tls=False)
    connection.set_secret(CLIENT_SECRET)
    connection.save()
    user = User.objects.create_user(f"{name}-{mailbox}", mailbox, "pw")
    crm_user = CrmUser.objects.create(organization=organization, name=mailbox, login=mailbox)
    return SyncProfile.objects.create(organization=organization, user=user, mailbox=mailbox,
                                      crm_user=crm_user, connection=connection, active=True)


def subscription_row(profile: SyncProfile, subscription_id: str, client_state: str,
                     agenda: str = "contacts", folder_id: str = "folder-1") -> GraphSubscription:
    """A subscription as the manager stores one (for tests of the receiving side alone)."""
    row = GraphSubscription(profile=profile, agenda=agenda, folder_id=folder_id,
                            resource=f"users/{profile.mailbox}/contactFolders/x/contacts",
                            subscription_id=subscription_id)
    row.set_secret(client_state)
    row.save()
    return row
