"""Raynet's changes read without spending the daily budget on every id each run, deletions
found by the journal of known ids, and the budget shared by an instance's profiles: the
backend over raynetsim (every request and answer validated against Raynet's
specification by the fixture), the requests counted as raynetsim received them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.crmstore.base import CrmError
from engine.crmstore.raynet import RaynetCrm
from engine.crmstore.raynet_client import RaynetClient
from engine.models import RaynetInstance, RaynetKnownRecord
from engine.records import ContactRecord, Kind
from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401
from tests.engine.raynet_helpers import comparison_due, raynet_of, someone_elses_client

pytestmark = pytest.mark.django_db

MANY = 1_200   # more than one page of 1,000


def person_lists(sim: RaynetHandle, since: int) -> list[str]:
    """The queries of the person lists raynetsim answered since the log's entry `since`."""
    return [entry["query"] for entry in list(sim.server.request_log)[since:]
            if entry["method"] == "GET" and entry["path"] == "/api/v2/person/"]


@pytest.fixture
def many(raynetsim: RaynetHandle) -> Iterator[list[int]]:  # noqa: F811
    yield [raynetsim.control.add_record(raynetsim.instance, "person",
                                        {"lastName": f"Novák {i}", "firstName": "Jan"})
           for i in range(MANY)]


def test_a_run_after_a_small_change_lists_the_changes_not_every_id(
        raynetsim: RaynetHandle, many: list[int]) -> None:  # noqa: F811
    crm = raynet_of(raynetsim)
    start = len(raynetsim.server.request_log)
    cursor = crm.current_cursor()
    # The first cursor compares every id with the (empty) journal: two pages of persons.
    assert len([q for q in person_lists(raynetsim, start) if "lastModifiedAt" not in q]) == 2
    assert RaynetKnownRecord.objects.filter(entity="person", gone_at=None).count() == MANY

    changed = crm.update(Kind.CONTACTS, str(many[7]), ContactRecord(first_name="Josef"),
                         frozenset({"first_name"}))
    assert changed.ok, changed
    start = len(raynetsim.server.request_log)
    next_cursor = crm.current_cursor()
    changes = list(crm.changes_since(Kind.CONTACTS, cursor))
    assert [(c.key, c.deleted) for c in changes] == [(str(many[7]), False)]
    lists = person_lists(raynetsim, start)
    # One for the cursor (the latest modified), one for the changes: ⌈1/1000⌉, not ⌈1200/1000⌉.
    assert len(lists) == 2, lists
    assert any("lastModifiedAt%5BGE%5D" in q or "lastModifiedAt[GE]" in q for q in lists)
    assert list(crm.changes_since(Kind.CONTACTS, next_cursor)) == []


def test_a_deletion_in_raynet_is_found_by_the_hourly_full_comparison(
        raynetsim: RaynetHandle, many: list[int]) -> None:  # noqa: F811
    crm = raynet_of(raynetsim)
    cursor = crm.current_cursor()
    someone_elses_client(raynetsim).call("DELETE", f"person/{many[3]}/")
    # Within the hour the changes are read from the cursor's time: the deletion waits.
    assert list(raynet_of(raynetsim).changes_since(Kind.CONTACTS, cursor)) == []
    comparison_due(raynetsim)
    start = len(raynetsim.server.request_log)
    crm = raynet_of(raynetsim)
    later = crm.current_cursor()    # a run's start: the comparison is due, done first
    assert len([q for q in person_lists(raynetsim, start) if "lastModifiedAt" not in q]) == 2
    assert [(c.key, c.deleted) for c in crm.changes_since(Kind.CONTACTS, cursor)] \
        == [(str(many[3]), True)]
    assert list(crm.changes_since(Kind.CONTACTS, later)) == []   # told once


def test_a_record_created_after_a_cursor_and_deleted_before_the_next_read_is_deleted(
        raynetsim: RaynetHandle) -> None:  # noqa: F811
    crm = raynet_of(raynetsim)
    cursor = crm.current_cursor()
    made = crm.create(Kind.CONTACTS, ContactRecord(first_name="Eva", last_name="Nová"),
                      "AAMk-eva")
    assert made.ok, made
    someone_elses_client(raynetsim).call("DELETE", f"person/{made.key}/")
    comparison_due(raynetsim)
    crm = raynet_of(raynetsim)
    crm.current_cursor()
    assert [(c.key, c.deleted) for c in crm.changes_since(Kind.CONTACTS, cursor)] \
        == [(made.key, True)]


def test_two_profiles_of_one_instance_share_one_budget(raynetsim: RaynetHandle) -> None:  # noqa: F811
    made = raynetsim.control.add_instance(raynetsim.instance, [
        {"email": raynetsim.user, "api_key": raynetsim.api_key, "full_name": "Alice Example"},
        {"email": "bob@example.com", "api_key": "bob-key", "full_name": "Bob Example"}],
        daily_limit=1_000)
    alice_id, bob_id = (user["person_id"] for user in made["users"])
    alice = RaynetCrm(RaynetClient(raynetsim.url, raynetsim.instance, raynetsim.user,
                                   raynetsim.api_key), alice_id)
    alice.current_cursor()
    raynetsim.control.budget(raynetsim.instance, used=960)
    alice.current_cursor()   # its answers say 40 are left, below the reserve of 50
    assert RaynetInstance.objects.get().remaining < 50
    # Bob's profile: another CRM user, API user and client; it knows from Alice's answers.
    def bobs_run() -> RaynetCrm:
        return RaynetCrm(RaynetClient(raynetsim.url, raynetsim.instance, "bob@example.com",
                                      "bob-key"), bob_id)

    start = len(raynetsim.server.request_log)
    with pytest.raises(CrmError, match=r"Raynet's daily request budget would be used up: "
                                       r"\d+ left, this run needs ~\d+ more .* it renews at "
                                       r"00:00 UTC"):
        bobs_run().create(Kind.CONTACTS, ContactRecord(last_name="Nový"), "AAMk-1")
    # One request to be sure the number is today's, and nothing written.
    sent = list(raynetsim.server.request_log)[start:]
    assert [e["method"] for e in sent] == ["GET"]
    # A budget renewed (here: raised) is seen by the next run's one request, which goes on.
    raynetsim.control.budget(raynetsim.instance, daily_limit=24_000, used=0)
    assert bobs_run().create(Kind.CONTACTS, ContactRecord(last_name="Nový"), "AAMk-1").ok

