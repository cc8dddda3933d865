"""`python bench/run.py propagation --crm raynet --n 50`: how soon a change on one side shows
on the other, with Raynet (raynetsim) as the CRM.

As deployed: ewsim in a child process, raynetsim in this one (its webhook deliveries paced as
Raynet paces them: one a second per address), and as child processes the web server (which
takes the webhook deliveries), `manage.py listen` (EWS streaming notifications, and the
webhook journal) and `manage.py qcluster`. One profile syncs contacts two-way; its address
book (ADDRESS_BOOK contacts on each side) is synced once, and the webhook registered, before
anything is timed. Then N changes one at a time in each direction, each timed from the
moment it is made until the other side shows it:
- exchange-to-crm: a contact's notes edited in Exchange through exchangelib with the user's
  own credentials (as Outlook would), until Raynet's person has them (its `notice`);
- crm-to-exchange: a Raynet person's `notice` edited through Raynet's API (as a Raynet user
  would), until exchangelib reads it back as the linked contact's notes: through the
  webhook, the listener and a worker.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.contacts import SERVICE, SERVICE_PASSWORD, make_profile, person, seed_exchange
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
    run_figures,
    timed_edits,
    wait_for_listener,
)
from bench.run import USER, _account, _free_port, simulator

INSTANCE, RAYNET_USER, RAYNET_KEY = "bench", "bench@example.com", "bench-api-key"
# The benchmark's own reads count on the instance's daily budget too: room for them.
DAILY_BUDGET = 10_000_000


# --- set-up -------------------------------------------------------------------------------
@contextmanager
def raynet() -> Iterator[Any]:
    from raynetsim.server import RaynetServer
    from raynetsim.testing import ControlClient

    server = RaynetServer(port=0).start()
    control = ControlClient(server.base_url)
    try:
        control.add_instance(INSTANCE, [{"email": RAYNET_USER, "api_key": RAYNET_KEY,
                                         "full_name": "Benchmark"}])
        control.budget(INSTANCE, daily_limit=DAILY_BUDGET)
        yield server
    finally:
        server.stop()


def web_server(port: int) -> Child:
    child = Child("web", "runserver", f"127.0.0.1:{port}", "--noreload")
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return child
        except urllib.error.HTTPError:
            return child   # it answers (unhealthy before the first worker beat: no matter)
        except OSError:
            child.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not start; see {child.log}") from None
            time.sleep(0.2)


def seed_raynet(control: Any, size: int) -> None:
    for i in range(size):
        record = person(i, "crm")
        control.add_record(INSTANCE, "person", {
            "firstName": record.first_name, "lastName": record.last_name,
            "contactInfo": {"email": record.email1}, "notice": record.note})


def prepare(url: str, server: Any, size: int) -> tuple[Any, list[Pair]]:
    from crm.models import CrmUser
    from engine.crmstore import raynet_webhooks
    from engine.jobs import run_job
    from engine.models import Agenda, Link
    from profiles.models import CrmConnection

    profile = make_profile(url, "propagation-raynet", USER)
    profile.sync_calendar = False   # contacts only: every sync the listener queues is measured
    profile.save()
    contacts = profile.contactsettings
    contacts.scope = contacts.Scope.ORGANIZATION
    contacts.save()
    CrmUser.objects.filter(pk=profile.crm_user_id).update(login=RAYNET_USER)
    connection = CrmConnection.objects.get(organization_id=profile.organization_id)
    connection.kind = "raynet"
    connection.settings = {"base_url": server.api_url, "instance": INSTANCE,
                           "user": RAYNET_USER}
    connection.update_secrets({"api_key": RAYNET_KEY})
    connection.save()
    from raynetsim.testing import ControlClient

    seed_raynet(ControlClient(server.base_url), size)
    seed_exchange(url, USER, [person(i, "ews") for i in range(size)])
    status = run_job(profile.pk, Agenda.CONTACTS)
    links = list(Link.objects.filter(profile=profile, agenda=Agenda.CONTACTS,
                                     state=Link.State.ACTIVE)
                 .values_list("crm_key", "remote_id"))
    if status != "success" or len(links) != 2 * size:
        raise RuntimeError(f"the first sync ended {status} with {len(links)} links, "
                           f"not {2 * size}")
    # Only now: the first sync's own creations are not announced to it.
    raynet_webhooks.register(connection)
    return profile, [Pair(int(key), remote) for key, remote in links]


# --- the two kinds of change ----------------------------------------------------------------
def _client() -> Any:
    from engine.crmstore.raynet_client import RaynetClient

    return RaynetClient(os.environ["BENCH_RAYNET_API"], INSTANCE, RAYNET_USER, RAYNET_KEY)


def _raynet_notice(client: Any, pair: Pair) -> str:
    return str((client.get(f"person/{pair.person_id}/").get("data") or {}).get("notice")
               or "")


def _exchange_notes(account: Any, pair: Pair, direction: Direction) -> str:
    direction.own_requests += 1   # one GetItem
    (item,) = account.fetch(ids=[(pair.remote_id, None)], only_fields=["body"])
    return str(item.body or "").strip()


def edit_in_exchange(account: Any, client: Any, pair: Pair, value: str,
                     direction: Direction) -> Callable[[], bool]:
    """Outlook's edit: read the contact, change its notes, save that field."""
    direction.own_requests += 2   # GetItem + UpdateItem
    (item,) = account.fetch(ids=[(pair.remote_id, None)])
    item.body = value
    item.save(update_fields=["body"])
    return lambda: _raynet_notice(client, pair) == value


def edit_in_raynet(account: Any, client: Any, pair: Pair, value: str,
                   direction: Direction) -> Callable[[], bool]:
    """A Raynet user's edit of the person's notes (Raynet announces it to the webhook)."""
    client.call("POST", f"person/{pair.person_id}/", body={"notice": value})
    return lambda: _exchange_notes(account, pair, direction) == value


EDITS = {"exchange-to-crm": edit_in_exchange, "crm-to-exchange": edit_in_raynet}


def measure(name: str, n: int, pairs: list[Pair], account: Any, client: Any, control: Any,
            server: Any, peaks: PeakRss, processes: tuple[Child, ...]) -> dict[str, Any]:
    control.reset_counters()
    delivered = len(server.webhooks.delivered)
    first_run = next_run_id()
    direction = timed_edits(name, n, pairs, lambda pair, value, d: EDITS[name](
        account, client, pair, value, d), peaks, processes)
    return {
        "benchmark": f"propagation.raynet.{name}", "items": n, **latency_figures(direction),
        "ews_requests": sum(control.counters().values()) - direction.own_requests,
        "webhook_deliveries": len(server.webhooks.delivered) - delivered,
        "webhook_failures": len(server.webhooks.failures),
        **run_figures(first_run, peaks, processes),
    }


def bench_propagation(n: int, latency_ms: int, smoke: bool) -> list[dict[str, Any]]:
    port = _free_port()
    # Before Django is set up: this process and every child read the same settings.
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.raynet_settings"
    os.environ["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    with scratch_database("propagation_raynet"), raynet() as server:
        from bench.contacts import setup_django

        os.environ["BENCH_RAYNET_API"] = server.api_url
        setup_django()
        with simulator(latency_ms) as (url, control, _pid):
            control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
            _profile, pairs = prepare(url, server, SMOKE_ADDRESS_BOOK if smoke
                                      else ADDRESS_BOOK)
            account = _account(url)
            client = _client()
            with children(start_cluster(), Child("listener", "listen"),
                          web_server(port)) as processes:
                cluster, listener, _web = processes
                wait_for_cluster(cluster)
                wait_for_listener(control, listener)
                peaks = PeakRss(*processes)
                results = [measure(name, n, pairs, account, client, control, server, peaks,
                                   processes) for name in DIRECTIONS]
        for result in results:
            result.update(address_book=len(pairs), database=database_vendor(),
                          timings_checked=not smoke)
    return results
