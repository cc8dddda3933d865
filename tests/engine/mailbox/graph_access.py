"""How tests reach ewsim's Graph front door: an app-only OAuth client and its MailboxAccess.

The app signs in through MSAL with ewsim's TLS listener as its authority (MSAL takes https
authorities only; the listener's certificate is self-signed, so TLS verification is off for
this connection, as an administrator may turn it off for an internal CA).
"""

from __future__ import annotations

import itertools

from engine.mailbox.base import Auth, MailboxAccess
from ewsim.testing import SimHandle

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "5b4f2a6e-1c3d-4e8f-9a0b-7c6d5e4f3a2b"
CLIENT_SECRET = "graph-app-secret"
_resets = itertools.count()


def add_app(sim: SimHandle, **values: object) -> None:
    sim.control.add_app(CLIENT_ID, CLIENT_SECRET, tenant=TENANT, **values)


def graph_access(sim: SimHandle, add: bool = True, **overrides: object) -> MailboxAccess:
    """Alice's mailbox through Graph, as the app (registered first unless `add` is False)."""
    if add:
        add_app(sim)
    assert sim.https_base_url, "ewsim runs without its TLS listener"
    values: dict[str, object] = {
        "mailbox": sim.user, "endpoint": sim.graph_url, "auth": Auth.OAUTH2,
        "secret": CLIENT_SECRET, "tenant_id": TENANT, "client_id": CLIENT_ID,
        "token_url": f"{sim.https_base_url}/{TENANT}/oauth2/v2.0/token",
        "verify_tls": False, "throttle_budget_seconds": 5.0,
        # The contract's events lie in 2030: a window reaching them.
        "calendar_days_past": 30, "calendar_days_future": 2000,
        # A fresh MSAL application (and token cache) per test: the simulator forgets tokens.
        "settings_version": f"test-{next(_resets)}",
    }
    values.update(overrides)
    return MailboxAccess(**values)  # type: ignore[arg-type]


def immutable_id(sim: SimHandle, store_id: str) -> str:
    """The Graph (immutable) id of an item the control plane names by its store id."""
    store = sim.server.store
    with store.lock:
        return store.immutable_of.get(store_id, store_id)


def store_id(sim: SimHandle, graph_id: str) -> str:
    """The store id of an item Graph names by its immutable id (for the control plane)."""
    store = sim.server.store
    with store.lock:
        item = store.by_immutable.get(graph_id)
        return item.id if item is not None else graph_id
