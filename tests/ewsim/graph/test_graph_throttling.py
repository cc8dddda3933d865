"""Faults on Graph requests, the per-mailbox concurrency cap, request counters."""

from __future__ import annotations

import threading
import time

from .client import Graph


def _wait_until(predicate, what: str, seconds: float = 20.0) -> None:
    # Polls a condition (not a duration): the assertion does not depend on machine speed.
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_http_503_and_429_carry_retry_after_and_graph_error_bodies(ewsim):
    graph = Graph.connect(ewsim)
    ewsim.control.fault("http_503", "mailFolders.get", retry_after=2)
    busy = graph.get("mailFolders/inbox")
    assert busy.status == 503 and busy.headers["Retry-After"] == "2"
    assert busy.code == "ServiceUnavailable"
    ewsim.control.fault("http_429", "mailFolders.get", retry_after=5)
    throttled = graph.get("mailFolders/inbox")
    assert throttled.status == 429 and throttled.headers["Retry-After"] == "5"
    assert graph.get("mailFolders/inbox").status == 200   # faults are used up


def test_response_error_fault_answers_any_code_and_status(ewsim):
    graph = Graph.connect(ewsim)
    ewsim.control.fault("response_error", "contacts.create", response_code="ErrorQuotaExceeded",
                        status=507)
    answer = graph.post("contacts", {"givenName": "X"})
    assert answer.status == 507 and answer.code == "ErrorQuotaExceeded"
    assert graph.get("contacts").json["value"] == []


def test_connection_reset_drops_the_connection(ewsim):
    import pytest
    graph = Graph.connect(ewsim)
    ewsim.control.fault("connection_reset", "mailFolders.list")
    with pytest.raises(OSError):
        graph.get("mailFolders")
    assert graph.get("mailFolders").status == 200


def test_fifth_concurrent_request_on_a_mailbox_is_throttled(ewsim):
    graph = Graph.connect(ewsim)
    ewsim.server.store.add_user("bob@example.com", "bob-pw")
    ewsim.control.fault("hold", "mailFolders.list", count=4)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(graph.get("mailFolders").status))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        _wait_until(lambda: ewsim.control.graph_stats()["holding"] == 4, "4 held requests")
        fifth = graph.get("mailFolders/inbox")
        assert fifth.status == 429 and fifth.code == "ApplicationThrottled"
        assert fifth.headers["Retry-After"]
        # Another mailbox has its own budget.
        assert graph.get("/users/bob@example.com/mailFolders/inbox").status == 200
    finally:
        ewsim.control.release_held()
        for thread in threads:
            thread.join(30)
    assert results == [200, 200, 200, 200]
    stats = ewsim.control.graph_stats()
    # The fifth arrived while four were in flight: the peak shows the overrun, the
    # admitted peak the cap.
    assert stats["peak_concurrency"]["alice@example.com"] == 5
    assert stats["peak_admitted"]["alice@example.com"] == 4
    assert stats["peak_concurrency"]["bob@example.com"] == 1
    assert stats["throttled"]["alice@example.com"] == 1
    assert stats["in_flight"] == {}
    assert graph.get("mailFolders/inbox").status == 200


def test_graph_requests_are_counted_apart_from_ews_operations(ewsim):
    graph = Graph.connect(ewsim)
    graph.get("mailFolders")
    graph.get("mailFolders/inbox")
    graph.get("mailFolders/inbox")
    stats = ewsim.control.graph_stats()
    assert stats["requests"] == {"mailFolders.list": 1, "mailFolders.get": 2}
    assert ewsim.control.counters() == {}      # the EWS counter is untouched
    ewsim.control.reset_counters()
    assert ewsim.control.graph_stats()["requests"] == {}
