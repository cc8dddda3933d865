"""Raynet's batch writes: sent several at a time but never more than four in flight (raynetsim
counts the requests it is answering at once), each item keeping its own result; companies
made once however many writes name them; and a first sync's requests per record written."""

from __future__ import annotations

import math

import pytest

from engine.crmstore import raynet_bulk
from engine.crmstore.raynet import ORIGIN_PREFIX
from engine.models import Run
from engine.records import ContactRecord, Kind
from engine.sync import sync
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401
from tests.engine.raynet_helpers import profile, raynet_of  # noqa: F401
from tests.engine.sync_helpers import add_contact

# The backend keeps its instance's budget and journal of known ids in the database.
pytestmark = pytest.mark.django_db


def test_a_batch_of_creates_keeps_four_requests_in_flight_and_each_item_its_result(
        raynetsim: RaynetHandle) -> None:  # noqa: F811
    crm = raynet_of(raynetsim)
    taken = crm.create(Kind.CONTACTS, ContactRecord(last_name="First"), "item-5")
    assert taken.ok, taken
    # Every answer 50 ms late: sent one by one, never two would be in flight at once.
    raynetsim.control.settings(latency_ms=50)
    raynetsim.control.concurrency(reset=True)
    items = [(ContactRecord(first_name=f"P{i}", last_name=f"Person {i}",
                            company="Stavby Brno s.r.o." if i % 2 else "ACME a.s."), f"item-{i}")
             for i in range(20)]
    written = crm.create_many(Kind.CONTACTS, items)
    assert raynetsim.control.concurrency()["peak"] == raynet_bulk.WORKERS == 4
    # item-5's origin is taken already: its create alone is refused, the others are made,
    # each result in its item's place, with the version Raynet gives it.
    assert [w.ok for w in written] == [i != 5 for i in range(20)]
    assert "DuplicateExtId" in written[5].error
    found = crm.find_by_origin(Kind.CONTACTS, [f"item-{i}" for i in range(20)])
    assert {origin: found[origin] for origin in found if origin != "item-5"} == {
        f"item-{i}": w.key for i, w in enumerate(written) if w.ok}
    records = crm.fetch(Kind.CONTACTS, [w.key for w in written if w.ok])
    assert {w.key: w.version for w in written if w.ok} == {
        key: r.version for key, r in records.items()}
    assert sorted({r.record.company for r in records.values()}) == ["ACME a.s.",
                                                                    "Stavby Brno s.r.o."]
    # Two companies named by twenty writes sent at once: each made once.
    companies = raynetsim.server.store.instances[raynetsim.instance].records["company"]
    assert sorted(c.fields["name"] for c in companies.values()) == [
        "ACME a.s.", "Stavby Brno s.r.o."]


def test_an_existing_company_is_found_by_name_through_one_list(
        raynetsim: RaynetHandle) -> None:  # noqa: F811
    known = raynetsim.control.add_record(raynetsim.instance, "company", {
        "name": "Stavby  Brno S.R.O.", "rating": "A", "state": "A_POTENTIAL",
        "role": "A_SUBSCRIBER"})
    crm = raynet_of(raynetsim)
    assert crm.find_or_create_company("stavby brno s.r.o.") == str(known)
    assert crm.find_or_create_company("Stavby Brno s.r.o.") == str(known)
    made = crm.find_or_create_company("Nová firma a.s.")
    assert crm.find_or_create_company("nová  firma a.s.") == made != str(known)
    counted = raynetsim.control.counters()
    assert (counted.get("GET /company/"), counted.get("PUT /company/")) == (1, 1)


def test_look_ups_of_many_origins_and_addresses_read_the_persons_once(
        raynetsim: RaynetHandle) -> None:  # noqa: F811
    crm = raynet_of(raynetsim)
    for i in range(3):
        assert crm.create(Kind.CONTACTS, ContactRecord(last_name=f"P{i}",
                                                       email1=f"P{i}@Example.com"),
                          f"o{i}").ok
    before = sum(raynetsim.control.counters().values())
    assert crm.find_by_origin(Kind.CONTACTS, ["o0", "o2", "o9"]).keys() == {"o0", "o2"}
    by_email = crm.find_by_email(["p1@example.com", "P2@EXAMPLE.COM", "none@example.com"])
    assert [len(by_email[a]) for a in ("p1@example.com", "p2@example.com",
                                       "none@example.com")] == [1, 1, 0]
    assert sum(raynetsim.control.counters().values()) - before == 1   # one list page
    # A write in between: the next look-up reads again (and finds the new person).
    assert crm.create(Kind.CONTACTS, ContactRecord(last_name="P3"), "o3").ok
    assert crm.find_by_origin(Kind.CONTACTS, ["o1", "o3", "o8"]).keys() == {"o1", "o3"}
    assert ORIGIN_PREFIX == "exchange:"


@pytest.mark.django_db(transaction=True)
def test_a_first_sync_makes_at_most_about_two_requests_per_contact_written(
        ewsim: SimHandle, raynetsim: RaynetHandle,  # noqa: F811
        profile: SyncProfile) -> None:  # noqa: F811
    n = 30
    for i in range(n):
        add_contact(ewsim, f"Jan{i}", f"Novák{i}", email=f"jan{i}@firma{i % 7}.cz",
                    company=f"Firma {i % 7} s.r.o.", job_title="Nákup")
    raynetsim.control.settings(latency_ms=20)
    raynetsim.control.concurrency(reset=True)
    before = sum(raynetsim.control.counters().values())
    first = sync(SyncProfile.objects.get(pk=profile.pk), "contacts")
    assert (first.status, first.crm_created, first.errors) == (Run.Status.SUCCESS, n, 0)
    requests = sum(raynetsim.control.counters().values()) - before
    # The create (its external id in it) and a company for some: at most 2.1 a record, the
    # reads of ⌈n/1000⌉ pages, and a few fixed (the owner, the cursor's lists, the versions).
    assert requests <= 2.1 * n + math.ceil(n / 1000) + 10, \
        raynetsim.control.counters()
    assert raynetsim.control.concurrency()["peak"] <= 4
    again = sync(SyncProfile.objects.get(pk=profile.pk), "contacts")
    assert (again.status, again.items.count()) == (Run.Status.SUCCESS, 0)


def test_a_record_named_twice_in_a_batch_is_never_written_by_two_threads_at_once() -> None:
    # Rounds of the batch's positions: each record at most once a round, in the batch's order.
    assert raynet_bulk._rounds(["7", "8", "7", "9", "7", "8"]) == [[0, 1, 3], [2, 5], [4]]
    assert raynet_bulk._rounds([]) == []
