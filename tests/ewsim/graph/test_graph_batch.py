"""JSON batching: up to 20 requests, one answer each, same routing as direct requests."""

from __future__ import annotations

from .client import STAMP, Graph


def _create(n: int) -> dict:
    return {"id": str(n), "method": "POST", "url": "/users/alice@example.com/contacts",
            "headers": {"Content-Type": "application/json"},
            "body": {"givenName": f"C{n}",
                     "singleValueExtendedProperties": [{"id": STAMP, "value": f"crm-{n}"}]}}


def test_batch_creates_twenty_and_answers_each(ewsim):
    graph = Graph.connect(ewsim)
    answer = graph.post("/$batch", {"requests": [_create(n) for n in range(1, 21)]})
    assert answer.status == 200
    responses = answer.json["responses"]
    assert sorted(int(r["id"]) for r in responses) == list(range(1, 21))
    assert all(r["status"] == 201 for r in responses)
    assert responses[0]["body"]["givenName"] == "C1"
    assert len(graph.get("contacts?$top=50").json["value"]) == 20
    assert ewsim.control.graph_stats()["requests"]["contacts.create"] == 20


def test_more_than_twenty_requests_is_400_and_runs_none(ewsim):
    graph = Graph.connect(ewsim)
    answer = graph.post("/$batch", {"requests": [_create(n) for n in range(21)]})
    assert answer.status == 400 and answer.code == "BadRequest"
    assert graph.get("contacts").json["value"] == []


def test_one_failing_request_does_not_fail_the_others(ewsim):
    graph = Graph.connect(ewsim)
    contact = graph.post("contacts", {"givenName": "A"}).json
    requests = [
        {"id": "a", "method": "PATCH", "url": f"/users/alice@example.com/contacts/{contact['id']}",
         "headers": {"Content-Type": "application/json"}, "body": {"surname": "B"}},
        {"id": "b", "method": "DELETE",
         "url": "/users/alice@example.com/contacts/AAMkA" + "x" * 40},
        {"id": "c", "method": "GET", "url": f"users/alice@example.com/contacts/{contact['id']}"
                                            f"?$select=surname"},
        {"id": "d", "method": "DELETE",
         "url": f"/users/alice@example.com/contacts/{contact['id']}"},
    ]
    responses = {r["id"]: r for r in graph.post("/$batch", {"requests": requests}).json[
        "responses"]}
    assert responses["a"]["status"] == 200
    assert responses["b"]["status"] == 404
    assert responses["b"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert responses["c"]["body"]["surname"] == "B"
    assert responses["d"]["status"] == 204 and "body" not in responses["d"]


def test_write_without_content_type_rejects_the_batch(ewsim):
    graph = Graph.connect(ewsim)
    request = _create(1)
    del request["headers"]
    answer = graph.post("/$batch", {"requests": [request]})
    assert answer.status == 400
    assert "does not contain Content-Type header" in answer.json["error"]["message"]


def test_throttled_request_inside_a_batch_carries_retry_after(ewsim):
    graph = Graph.connect(ewsim)
    ewsim.control.fault("http_429", "contacts.create", count=1, retry_after=3)
    responses = graph.post("/$batch", {"requests": [_create(1), _create(2)]}).json["responses"]
    by_id = {r["id"]: r for r in responses}
    assert by_id["1"]["status"] == 429
    assert by_id["1"]["headers"]["Retry-After"] == "3"
    assert by_id["2"]["status"] == 201


def test_duplicate_ids_and_bad_payload_are_400(ewsim):
    graph = Graph.connect(ewsim)
    assert graph.post("/$batch", {"requests": [_create(1), _create(1)]}).status == 400
    assert graph.post("/$batch", {"nothing": []}).status == 400
