from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Receiver:
    """A webhook receiver on loopback that answers 500 to its first `failures` deliveries."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, str], dict[str, Any]]] = []
        self.failures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                failing = receiver.failures > 0
                receiver.failures -= 1
                if not failing:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append((time.monotonic(), headers, body))
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.httpd.shutdown()
    made.httpd.server_close()


def _register(raynetsim, api, receiver) -> str:
    answer = api.put(raynetsim.url + "webhook/", json={
        "url": receiver.url, "secretToken": "s3cret",
        "events": ["record.created", "record.updated", "record.deleted"]})
    assert answer.status_code == 201
    return answer.json()["data"]["uuid"]


def test_a_webhook_is_registered_listed_and_deleted(raynetsim, api, receiver):
    hook = _register(raynetsim, api, receiver)
    listed = api.get(raynetsim.url + "webhook/").json()["data"]["webhooks"]
    assert [(h["webhookId"], h["url"]) for h in listed] == [(hook, receiver.url)]
    assert api.delete(raynetsim.url + f"webhook/{hook}/").status_code == 200
    assert api.get(raynetsim.url + "webhook/").json()["data"]["webhooks"] == []


def test_changes_are_delivered_with_the_token_and_the_payload(raynetsim, api, receiver):
    raynetsim.control.settings(webhooks_paused=True)
    _register(raynetsim, api, receiver)
    person = api.put(raynetsim.url + "person/",
                     json={"lastName": "Hook", "extIds": ["exchange:9"]}).json()["data"]["id"]
    api.delete(raynetsim.url + f"person/{person}/")
    raynetsim.control.flush_webhooks()
    assert [body["type"] for _, _, body in receiver.received] == [
        "record.created", "record.deleted"]
    _, headers, body = receiver.received[0]
    assert headers["x-raynetcrm-token"] == "s3cret"   # header names are case-blind
    assert body["data"] == {"entityName": "person", "entityId": person,
                            "extIds": ["exchange:9"]}
    assert body["author"] == raynetsim.user
    assert set(body) >= {"eventId", "createdAt", "type", "author", "source", "data"}


def test_a_failed_delivery_is_retried(raynetsim, api, receiver):
    _register(raynetsim, api, receiver)
    receiver.failures = 1
    raynetsim.control.settings(webhooks_paused=True)   # only flush() sends
    api.put(raynetsim.url + "person/", json={"lastName": "Retry"})
    assert raynetsim.control.flush_webhooks() == {"delivered": 0, "pending": 1}
    assert raynetsim.control.flush_webhooks() == {"delivered": 1, "pending": 0}
    assert len(receiver.received) == 1


def test_a_url_failing_for_seven_days_is_removed(raynetsim, api, receiver):
    _register(raynetsim, api, receiver)
    receiver.failures = 10
    raynetsim.control.settings(webhooks_paused=True)
    api.put(raynetsim.url + "person/", json={"lastName": "Lost"})
    raynetsim.control.flush_webhooks()
    raynetsim.control.advance_clock(6 * 24 * 3600)
    assert raynetsim.control.flush_webhooks() == {"delivered": 0, "pending": 1}
    raynetsim.control.advance_clock(24 * 3600)
    assert raynetsim.control.flush_webhooks() == {"delivered": 0, "pending": 0}
    assert api.get(raynetsim.url + "webhook/").json()["data"]["webhooks"] == []


def test_the_thread_delivers_one_event_per_interval_to_a_url(raynetsim, api, receiver):
    raynetsim.control.settings(webhook_interval_seconds=0.5)
    _register(raynetsim, api, receiver)
    for name in ("One", "Two", "Three"):
        api.put(raynetsim.url + "person/", json={"lastName": name})
    deadline = time.monotonic() + 10
    while len(receiver.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    times = [at for at, _, _ in receiver.received]
    assert len(times) == 3
    assert all(later - earlier >= 0.4 for earlier, later in itertools.pairwise(times))
