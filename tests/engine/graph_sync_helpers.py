"""A profile reaching Alice's mailbox through an Exchange Online (Microsoft Graph) connection,
set up as an administrator would: the engine opens it by the connection's kind."""

from __future__ import annotations

from typing import Any

from engine.models import Run
from engine.sync import sync
from ewsim.testing import SimHandle
from profiles.models import MailboxConnection, SyncProfile
from tests.engine.mailbox.graph_access import CLIENT_ID, CLIENT_SECRET, TENANT, add_app
from tests.engine.sync_helpers import make_profile


def make_graph_profile(sim: SimHandle, **contact_settings: Any) -> SyncProfile:
    """`make_profile`'s profile, its connection turned into a Graph one (app-only OAuth)."""
    profile = make_profile(sim, **contact_settings)
    add_app(sim)
    connection = profile.connection
    connection.kind = MailboxConnection.Kind.GRAPH
    connection.ews_url = sim.graph_url
    connection.auth_type = MailboxConnection.Auth.OAUTH2
    connection.username = ""
    connection.tenant_id, connection.client_id = TENANT, CLIENT_ID
    # MSAL takes https authorities only: ewsim's TLS listener (self-signed, so unverified).
    connection.token_url = f"{sim.https_base_url}/{TENANT}/oauth2/v2.0/token"
    connection.verify_tls = False
    connection.set_secret(CLIENT_SECRET)
    connection.full_clean()
    connection.save()
    return SyncProfile.objects.get(pk=profile.pk)


def run_graph(profile: SyncProfile, agenda: str, **options: Any) -> Run:
    """One run through the product's own entry point, as a worker would start it."""
    return sync(SyncProfile.objects.get(pk=profile.pk), agenda, **options)
