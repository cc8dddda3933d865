"""ewsim's state file (`--state`): a restart keeps the mailboxes as they were, ids and sync
states included; a file it cannot use is reported and set aside, never a crash."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchangelib import IMPERSONATION, Contact, FileAttachment

from ewsim.persistence import (
    FORMAT,
    VERSION,
    StateFileError,
    StateKeeper,
    dump_state,
    load_state,
)
from ewsim.seed import JANA, SERVICE, seed_demo
from ewsim.server import EwsServer
from ewsim.testing import SimHandle

from .conftest import make_account
from .graph.client import Graph, call, token
from .test_occurrences import _view, _weekly, local


def _as_service(sim: SimHandle, mailbox: str = JANA):
    return make_account(sim, SERVICE, "svc-secret", access_type=IMPERSONATION, primary=mailbox)


@pytest.fixture
def second_server() -> Iterator[SimHandle]:
    """Another simulator process's worth of server: the one that starts after a restart."""
    server = EwsServer(port=0, validate=True).start()
    yield SimHandle(server)
    server.stop()
    assert not server.validation_errors + server.internal_errors


def test_a_restarted_server_has_the_same_items_ids_and_sync_states(ewsim, second_server,
                                                                    tmp_path):
    seed_demo(ewsim.server)
    jana = _as_service(ewsim)
    contact = jana.contacts.get(given_name="Petr")
    contact.job_title = "Jednatel a majitel"
    contact.save(update_fields=["job_title"])
    list(jana.contacts.sync_items(only_fields=["display_name"]))
    contacts_state = jana.contacts.item_sync_state
    message = next(m for m in jana.inbox.all() if m.has_attachments)
    series = _weekly(jana, local(2025, 1, 6, 10))
    occurrence = series.occurrence(2)
    occurrence.subject = "Moved to Tuesday"
    occurrence.start, occurrence.end = local(2025, 1, 14, 14), local(2025, 1, 14, 15)
    occurrence.save(update_fields=["subject", "start", "end"])

    keeper = StateKeeper(ewsim.server, tmp_path / "ewsim.json")
    assert keeper.save()
    assert not keeper.save(), "an unchanged state is not written again"
    restored = StateKeeper(second_server.server, keeper.path).load()
    assert restored is not None and restored[JANA] > 20

    assert dump_state(second_server.server) == dump_state(ewsim.server)
    after = _as_service(second_server)
    same = after.contacts.get(id=contact.id)
    assert (same.changekey, same.job_title) == (contact.changekey, "Jednatel a majitel")
    # The client's sync state goes on where it was: nothing new, then exactly what changed.
    assert list(after.contacts.sync_items(sync_state=contacts_state)) == []
    same.department = "Vedení společnosti"
    same.save(update_fields=["department"])
    changes = list(after.contacts.sync_items(sync_state=contacts_state,
                                             only_fields=["display_name"]))
    assert [(kind, item.id) for kind, item in changes] == [("update", contact.id)]
    # Attachments keep their bytes, series their exceptions.
    attachment = next(a for a in after.inbox.get(id=message.id).attachments
                      if isinstance(a, FileAttachment))
    original = next(a for a in message.attachments if isinstance(a, FileAttachment))
    assert attachment.content == original.content
    view = _view(after, local(2025, 1, 1), local(2025, 2, 28))
    assert [(i.subject, i.type) for i in view if i.subject != "Weekly"] == [
        ("Moved to Tuesday", "Exception")]
    # A new contact gets a new id, unlike any the restored ones have.
    new = Contact(account=after, folder=after.contacts, given_name="Nový", display_name="Nový")
    new.save()
    assert new.id not in {c.id for c in jana.contacts.all().only("id")}


def test_a_bearer_token_and_a_graph_delta_link_survive_the_restart(ewsim, second_server):
    graph = Graph.connect(ewsim)
    ewsim.control.create_item(graph.mailbox, "contacts", tag="Contact", GivenName="Ann")
    first = graph.get("contactFolders/contacts/contacts/delta")
    assert first.status == 200, first.raw
    delta_link = first.json["@odata.deltaLink"]

    load_state(second_server.server, dump_state(ewsim.server))
    after = call("GET", delta_link.replace(ewsim.base_url, second_server.base_url),
                 headers=graph.headers())
    assert after.status == 200, after.raw
    assert after.json["value"] == []
    assert token(second_server).status == 200   # the app is still registered


@pytest.mark.parametrize("content, reason", [
    (b"", "not a readable JSON file"),
    (b'{"format": "ewsim-state", "version": 1, "state": {"users": ', "not a readable JSON"),
    (b"\xff\xfe garbage", "not a readable JSON file"),
    (b"[1, 2, 3]", "not an ewsim state file"),
    (json.dumps({"format": "other", "version": VERSION}).encode(), "not an ewsim state file"),
    (json.dumps({"format": FORMAT, "version": VERSION + 1, "state": {}}).encode(),
     "another ewsim version"),
    (json.dumps({"format": FORMAT, "version": VERSION, "state": {}}).encode(), "damaged"),
    (json.dumps({"format": FORMAT, "version": VERSION, "state": {
        "users": {"x": {"$class": "Popen", "fields": {"args": ["true"]}}}, "apps": {},
        "tokens": {}, "mailboxes": {}, "immutable_of": {},
        "graph": {"generation": {}, "view_states": {}}}}).encode(), "damaged"),
])
def test_a_file_it_cannot_use_raises_a_clear_error_and_leaves_the_server_empty(
        ewsim, tmp_path, content, reason):
    seed_demo(ewsim.server)
    path = tmp_path / "ewsim.json"
    path.write_bytes(content)
    with pytest.raises(StateFileError, match=reason):
        StateKeeper(ewsim.server, path).load()
    assert ewsim.server.store.mailboxes == {}
    assert ewsim.server.store.items == {}


def test_no_file_yet_is_no_error(ewsim, tmp_path):
    assert StateKeeper(ewsim.server, tmp_path / "missing.json").load() is None


def test_a_failed_write_leaves_the_previous_file_whole(ewsim, tmp_path):
    keeper = StateKeeper(ewsim.server, tmp_path / "ewsim.json")
    keeper.save()
    before = keeper.path.read_bytes()
    ewsim.server.store.users["alice@example.com"].can_impersonate = {object()}  # type: ignore
    with pytest.raises(TypeError):
        keeper.save()
    assert keeper.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ewsim.json"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(state: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ewsim", "--seed", "demo", "--state", str(state),
         "--port", str(port)], stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_control/counters", timeout=1)
            return process
        except OSError:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.1)
    process.kill()
    raise AssertionError("ewsim did not start")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    return stderr


def _jana_contact_ids(port: int) -> set[str]:
    sim = SimHandle.__new__(SimHandle)
    sim.url = f"http://127.0.0.1:{port}/EWS/Exchange.asmx"
    return {c.id for c in _as_service(sim).contacts.all().only("id")}


def test_the_command_keeps_the_demo_across_a_restart_and_sets_a_corrupt_file_aside(tmp_path):
    state = tmp_path / "var" / "ewsim-demo.json"
    port = _free_port()
    process = _start(state, port)
    first_ids = _jana_contact_ids(port)
    # Written at once, then at shutdown (SIGTERM, as `manage.py serve` stops it).
    assert state.exists()
    urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{port}/_control/users", method="POST",
        data=json.dumps({"address": "late@example.com", "password": "x"}).encode()))
    assert "saved its mailboxes" in _stop(process)
    assert "late@example.com" in json.loads(state.read_text())["state"]["users"]

    process = _start(state, port)
    assert _jana_contact_ids(port) == first_ids
    assert "restored its mailboxes" in _stop(process)

    state.write_text('{"format": "ewsim-state", "version": 1, "state": {"us')
    process = _start(state, port)
    second_ids = _jana_contact_ids(port)
    stderr = _stop(process)
    assert "cannot use its state file" in stderr and "not a readable JSON file" in stderr
    assert len(second_ids) == len(first_ids) and not second_ids & first_ids   # seeded anew
    assert (state.parent / "ewsim-demo.json.unreadable").read_text().endswith('{"us')
    assert json.loads(state.read_text())["format"] == FORMAT
    assert not [p for p in os.listdir(state.parent) if p.endswith(".tmp")]


def test_a_file_that_cannot_be_written_is_logged_and_the_server_goes_on(ewsim, tmp_path,
                                                                        caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state's folder should be")
    keeper = StateKeeper(ewsim.server, blocker / "ewsim.json")
    assert keeper.save_or_log() is False
    assert "could not write its state" in caplog.text
    assert ewsim.server.store.users   # untouched
