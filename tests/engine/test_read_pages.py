"""A run reads Exchange's changes in pages nearly as large as SyncFolderItems gives (500),
and fetches, plans, writes and stamps their items a batch (100) at a time: few requests,
each full, and a worker killed inside a page repeats that page without duplicating."""

from __future__ import annotations

import pytest

from crm.models import Person
from engine.models import Link, Run
from engine.run.journal import Killed
from ewsim.testing import SimHandle

from .sync_helpers import add_contact, exchange_contacts, make_profile, run_contacts
from .test_edits_during_runs import killed_run

pytestmark = pytest.mark.django_db(transaction=True)


def add_contacts(sim: SimHandle, count: int) -> None:
    for i in range(count):
        add_contact(sim, f"Given{i}", f"Surname{i}", email=f"person{i}@example.com")


def test_a_first_import_lists_500_a_page_and_fetches_and_stamps_100_a_request(
        ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_contacts(ewsim, 600)
    ewsim.control.reset_counters()
    run = run_contacts(ewsim, profile)
    assert (run.status, run.crm_created) == (Run.Status.SUCCESS, 600), run.message
    # Two pages of the folder (500 + 100), then its own 600 stamps read back (500 + 100):
    # four listings; every GetItem and UpdateItem carries 100 items.
    assert ewsim.control.counters() == {"GetFolder": 1, "SyncFolderItems": 4, "GetItem": 6,
                                        "UpdateItem": 6}
    ewsim.control.reset_counters()
    again = run_contacts(ewsim, profile)
    assert again.status == Run.Status.SUCCESS and not again.items.exists()
    assert ewsim.control.counters() == {"SyncFolderItems": 1}


def test_a_worker_killed_between_two_batches_of_a_page_leaves_no_duplicate(
        ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_contacts(ewsim, 250)

    def dies(label: str) -> None:
        if label == "remote batch handled":   # 100 persons made, the page not checkpointed
            raise Killed(label)

    killed_run(ewsim, profile, dies)
    assert Person.objects.count() == 100
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert run.crm_created == 150
    assert Person.objects.count() == 250
    assert Link.objects.filter(profile=profile).count() == 250
    assert all(record.stamp for record in exchange_contacts(ewsim).values())
    ewsim.control.reset_counters()
    assert not run_contacts(ewsim, profile).items.exists()
    assert ewsim.control.counters() == {"SyncFolderItems": 1}
