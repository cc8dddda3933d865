"""`python bench/run.py propagation --backend graph --n 50`: how soon a change on one side shows
on the other when the profile reaches its mailbox through Microsoft Graph.

As deployed: ewsim (its Graph front door) in a child process, and as child processes the web
server (which takes Graph's change notifications at PUBLIC_BASE_URL/hooks/graph/),
`manage.py listen` (the Graph subscriptions, the notification journal, the CRM's change
journal) and `manage.py qcluster`. One profile syncs contacts two-way; its address book
(ADDRESS_BOOK contacts on each side) is synced once before anything is timed, and the listener
has subscribed the contacts folder (Graph checked the address with its validation handshake).

Then N changes one at a time in each direction, each timed from the moment it is made until
the other side shows it:
- exchange-to-crm: a contact's job title edited through Graph (PATCH, as Outlook on the web
  would), until the linked CRM person has it: Graph's notification, the hook, the listener
  and a worker;
- crm-to-exchange: a CRM person's job title edited through the crm models (a tracked save),
  until Graph reads it back from the linked contact.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from bench.contacts import SERVICE, SERVICE_PASSWORD
from bench.processes import (
    Child,
    PeakRss,
    children,
    database_vendor,
    scratch_database,
    start_cluster,
    wait_for_cluster,
)
from bench.propagation import (
    ADDRESS_BOOK,
    DIRECTIONS,
    SMOKE_ADDRESS_BOOK,
    Direction,
    Pair,
    latency_figures,
    next_run_id,
    prepare,
    run_figures,
    timed_edits,
)
from bench.propagation_raynet import web_server
from bench.run import USER, _free_port, simulator


def graph_client(profile: Any) -> Any:
    """The benchmark's own Graph client on the user's mailbox (its own token cache): another
    client than the product's, as Outlook is."""
    from engine.mailbox import access_for
    from engine.mailbox.graph_http import Budget, GraphClient

    access = dataclasses.replace(access_for(profile.connection, USER, profile),
                                 settings_version="bench-editor")
    return GraphClient(access, Budget(60.0))


def wait_for_subscription(control: Any, listener: Child, limit: float = 30.0) -> None:
    """Until Graph (ewsim) holds the listener's subscription of the contacts folder."""
    deadline = time.monotonic() + limit
    while not any("contact" in s["resource"].lower() for s in control.graph_subscriptions()):
        listener.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the listener did not subscribe within {limit:.0f} s; "
                               f"see {listener.log}")
        time.sleep(0.1)
    time.sleep(3.0)   # the catch-up sync a new subscription queues is over before timing


def _contact_url(pair: Pair) -> str:
    return f"/users/{USER}/contacts/{quote(pair.remote_id, safe='')}"


def _crm_job_title(pair: Pair) -> str:
    from crm.models import Person

    return Person.objects.filter(pk=pair.person_id).values_list("job_title", flat=True).get()


def edit_in_exchange(client: Any, pair: Pair, value: str, direction: Direction) -> Callable[
        [], bool]:
    direction.own_requests += 1
    client.call("PATCH", _contact_url(pair), body={"jobTitle": value})
    return lambda: _crm_job_title(pair) == value


def edit_in_crm(client: Any, pair: Pair, value: str, direction: Direction) -> Callable[
        [], bool]:
    from crm.models import Person

    record = Person.objects.get(pk=pair.person_id)
    record.job_title = value
    record.save()

    def arrived() -> bool:
        direction.own_requests += 1
        answer = client.call("GET", _contact_url(pair), params={"$select": "jobTitle"})
        return str((answer or {}).get("jobTitle") or "") == value

    return arrived


EDITS = {"exchange-to-crm": edit_in_exchange, "crm-to-exchange": edit_in_crm}


def measure(name: str, n: int, pairs: list[Pair], client: Any, control: Any, peaks: PeakRss,
            processes: tuple[Child, ...]) -> dict[str, Any]:
    from django.db.models import Sum

    from engine.models import Run

    sent_before = control.graph_notifications()["counters"].get("sent", 0)
    first_run = next_run_id()
    direction = timed_edits(name, n, pairs, lambda pair, value, d: EDITS[name](
        client, pair, value, d), peaks, processes)
    runs = Run.objects.filter(pk__gte=first_run)
    counters = control.graph_notifications()["counters"]
    return {
        "benchmark": f"propagation.graph.{name}", "items": n, **latency_figures(direction),
        "graph_requests": int(runs.aggregate(total=Sum("requests"))["total"] or 0),
        "notifications_sent": counters.get("sent", 0) - sent_before,
        **run_figures(first_run, peaks, processes),
    }


def bench_propagation(n: int, latency_ms: int, smoke: bool) -> list[dict[str, Any]]:
    port = _free_port()
    # Before Django is set up: this process and every child read the same settings (the web
    # server over plain http on loopback, as for the Raynet webhooks).
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.raynet_settings"
    os.environ["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    with scratch_database("propagation_graph"):
        from bench.contacts import setup_django

        setup_django()
        with simulator(latency_ms) as (url, control, _pid):
            control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
            profile, pairs = prepare(url, SMOKE_ADDRESS_BOOK if smoke else ADDRESS_BOOK)
            client = graph_client(profile)
            # The web server first: Graph checks its address when the listener subscribes.
            with children(web_server(port), start_cluster(),
                          Child("listener", "listen")) as processes:
                _web, cluster, listener = processes
                wait_for_cluster(cluster)
                wait_for_subscription(control, listener)
                peaks = PeakRss(*processes)
                results = [measure(name, n, pairs, client, control, peaks, processes)
                           for name in DIRECTIONS]
            client.close()
        for result in results:
            result.update(address_book=len(pairs), database=database_vendor(),
                          timings_checked=not smoke)
    return results
