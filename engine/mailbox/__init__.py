"""Mailbox backends: how the engine reaches a mailbox, chosen by the connection's kind.

`open_mailbox(profile)` is all the engine calls; `access_for()` turns the configuration models
into the plain `MailboxAccess` a backend takes, so backends know nothing of Django.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from django.conf import settings

from engine.mailbox.base import Auth, MailboxAccess, MailboxBackend

if TYPE_CHECKING:
    from profiles.models import MailboxConnection, SyncProfile

BACKENDS = {
    "ews": "engine.mailbox.ews.EwsMailbox",
    "graph": "engine.mailbox.graph.GraphMailbox",
}
# Graph connections leave the URL blank: Microsoft's API root (a national cloud, a proxy or
# a test server is given as the connection's URL).
GRAPH_ROOT = "https://graph.microsoft.com/v1.0"


def backend_class(kind: str) -> type[MailboxBackend]:
    try:
        path = BACKENDS[kind]
    except KeyError:
        raise NotImplementedError(
            f"No mailbox backend for connections of kind {kind!r} yet.") from None
    module, _, name = path.rpartition(".")
    return getattr(import_module(module), name)


def access_for(connection: MailboxConnection, mailbox: str,
               profile: SyncProfile | None = None) -> MailboxAccess:
    """What a backend needs to open `mailbox` through `connection` (and `profile`'s own
    credentials when the connection has none)."""
    if connection.uses_own_credentials or profile is None:
        username, secret = connection.username, connection.get_secret()
    else:
        username, secret = profile.mailbox_username, profile.get_mailbox_secret()
    endpoint = connection.ews_url
    if connection.kind == "graph" and not endpoint:
        endpoint = GRAPH_ROOT
    window: dict[str, int] = {}
    calendar = getattr(profile, "calendarsettings", None) if profile is not None else None
    if calendar is not None:
        window = {"calendar_days_past": calendar.days_past,
                  "calendar_days_future": calendar.days_future}
    return MailboxAccess(
        mailbox=mailbox, endpoint=endpoint, auth=Auth(connection.auth_type),
        username=username, secret=secret, impersonate=connection.uses_own_credentials,
        tenant_id=connection.tenant_id, client_id=connection.client_id,
        token_url=connection.token_url, verify_tls=connection.verify_tls,
        server_version=connection.server_version, time_zone=settings.TIME_ZONE,
        throttle_budget_seconds=settings.MAILBOX_THROTTLE_BUDGET, **window,
        settings_version=f"{connection.pk}:{connection.updated.isoformat()}"
        if connection.updated else "")


def open_mailbox(profile: SyncProfile) -> MailboxBackend:
    connection = profile.connection
    return backend_class(connection.kind)(access_for(connection, profile.mailbox, profile))
