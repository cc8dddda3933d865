"""`--seed demo`: the demo users (contacts, calendar and mail data are still to come)."""

from __future__ import annotations

from typing import Any


def seed_demo(server: Any) -> None:
    store = server.store
    store.add_user("alice@example.com", "alice-secret", "Alice Example", domain="EXAMPLE",
                   account="alice")
    store.add_user("svc@example.com", "svc-secret", "Sync Service", domain="EXAMPLE",
                   account="svc", can_impersonate=["*"])
