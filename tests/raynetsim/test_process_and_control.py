from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from raynetsim.persistence import StateKeeper
from raynetsim.server import RaynetServer
from raynetsim.validation import problems

ROOT = Path(__file__).resolve().parents[2]


def test_counters_and_the_request_log_tell_what_was_asked(raynetsim, api):
    api.put(raynetsim.url + "person/", json={"lastName": "Counted"})
    api.get(raynetsim.url + "person/1/")
    assert raynetsim.control.counters() == {"PUT /person/": 1, "GET /person/{id}/": 1}
    log = raynetsim.control.requests()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("PUT", "/api/v2/person/", 201), ("GET", "/api/v2/person/1/", 200)]


def test_the_validation_refuses_what_the_specification_refuses():
    entry = {"method": "PUT", "path": "/api/v2/meeting/", "query": "",
             "headers": {"Content-Type": "application/json", "Authorization": "Basic eDp5",
                         "X-Instance-Name": "acme"},
             "body": json.dumps({"title": "No priority", "owner": 1}),
             "status": 201, "response": {"success": True, "data": {"id": "not a number"}},
             "response_headers": {}}
    found = problems([entry])
    assert len(found) == 1 and "priority" in found[0]["error"]
    entry["body"] = json.dumps({"title": "Fine", "priority": "DEFAULT", "owner": 1})
    found = problems([entry])
    assert len(found) == 1 and "response" in found[0]


def test_the_state_file_keeps_records_and_ids(tmp_path):
    first = RaynetServer()
    instance = first.store.add_instance("acme")
    first.store.add_user(instance, "a@example.com", "k", "A Person", first.clock.now())
    record = first.store.create(instance, "meeting", {"title": "Kept"}, first.clock.now(), "a")
    record.ext_ids.append("exchange:1")
    StateKeeper(first.store, tmp_path / "state.json").save()
    first.httpd.server_close()

    second = RaynetServer()
    assert StateKeeper(second.store, tmp_path / "state.json").load() == 2
    kept = second.store.instances["acme"].by_ext_id("meeting", "exchange:1")
    assert kept is not None and kept.fields["title"] == "Kept"
    assert second.store.next_id() > record.id
    second.httpd.server_close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_python_m_raynetsim_serves_and_saves_at_sigterm(tmp_path):
    port = _free_port()
    state = tmp_path / "state.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "raynetsim", "--port", str(port), "--state", str(state),
         "--instance", "demo", "--user", "api@example.com", "--api-key", "k"],
        cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/api/v2/person/"
        deadline = time.monotonic() + 10
        while True:
            try:
                answer = requests.put(url, json={"lastName": "Saved"}, auth=(
                    "api@example.com", "k"), headers={"X-Instance-Name": "demo"}, timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert answer.status_code == 201
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    saved = json.loads(state.read_text())
    assert "Saved" in [r["fields"].get("lastName") for r in saved["instances"][0]["records"]]
