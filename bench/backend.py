"""Which mailbox backend the benchmarks' profiles use: `--backend ews` (the default) or
`--backend graph` (an Exchange Online connection to ewsim's Graph front door, same store).

With Graph, a profile's connection is app-only OAuth; its token endpoint is ewsim's over
plain http (the backend reaches it behind Microsoft's authority, as MSAL needs). Requests
are counted as the backend sent them (a `$batch` is one), since ewsim's EWS counters do not
see Graph traffic. The seeding and the exchangelib baselines stay on EWS: another client.
"""

from __future__ import annotations

import math
from typing import Any

BACKENDS = ("ews", "graph")
TENANT = "bench.onmicrosoft.com"
CLIENT_ID = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
CLIENT_SECRET = "bench-graph-secret"

_chosen = {"backend": "ews"}


def choose(name: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}")
    _chosen["backend"] = name


def name() -> str:
    return _chosen["backend"]


def is_graph() -> bool:
    return _chosen["backend"] == "graph"


def use_for(connection: Any, ews_url: str) -> None:
    """Turn a freshly made EWS connection into the chosen backend's (Graph: app-only OAuth to
    ewsim's Graph front door). Saves it."""
    if not is_graph():
        return
    from ewsim.testing import ControlClient

    base = ews_url.split("/EWS/", 1)[0]
    ControlClient(base).add_app(CLIENT_ID, CLIENT_SECRET, tenant=TENANT)
    connection.kind, connection.ews_url = "graph", f"{base}/graph/v1.0"
    connection.auth_type, connection.username = "oauth2", ""
    connection.tenant_id, connection.client_id = TENANT, CLIENT_ID
    connection.token_url = f"{base}/{TENANT}/oauth2/v2.0/token"
    connection.set_secret(CLIENT_SECRET)
    connection.full_clean()
    connection.save()


def requests(control: Any, run: Any) -> int:
    """Requests of one run: ewsim's EWS counters, or what the Graph backend sent."""
    if is_graph():
        return int(run.requests or 0)
    return sum(control.counters().values())


def max_requests(items: int, ews_limit: int) -> int:
    """The request target of a first sync of `items`. Graph takes at most 20 operations per
    `$batch` (EWS 100 per request), so Graph's target allows 5 requests per 100 items
    written or fetched instead of one, over the same fixed allowance."""
    if not is_graph():
        return ews_limit
    return 6 * math.ceil(items / 100) + 10
