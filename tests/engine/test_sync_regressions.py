"""Engine bugs the sync state machine (test_sync_state_machine.py) found, one test each."""

from __future__ import annotations

import pytest

from crm.models import Person
from engine.models import Link, Retry, Run, RunItem
from ewsim.testing import SimHandle

from .sync_helpers import exchange_contacts, make_profile, run_contacts
from .test_contacts_sync import add_exchange_contact

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_new_change_key_without_new_content_is_what_the_next_write_names(
        ewsim: SimHandle) -> None:
    # Outlook re-saves a contact without changing a synced field (a new ChangeKey only) while
    # the CRM edits it. The write to Exchange must name the ChangeKey just read: naming the
    # link's old one was refused as a stale-ChangeKey conflict, run after run.
    profile = make_profile(ewsim)
    item_id = add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    run_contacts(ewsim, profile)
    ewsim.control.update_item(item_id, GivenName="Petr")      # same content, new ChangeKey
    petr = Person.objects.get()
    petr.job_title = "Jednatel"
    petr.save()
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.conflicts, run.remote_updated) == (0, 1), list(
        run.items.values_list("action", "detail"))
    assert not Retry.objects.exists()
    assert exchange_contacts(ewsim)[item_id].job_title == "Jednatel"
    assert Link.objects.get().remote_version == ewsim.control.get_item(item_id)["changekey"]
    assert not run_contacts(ewsim, profile).items.exclude(
        action=RunItem.Action.LINK).exists()


def test_an_exchange_failure_while_writes_are_under_way_fails_the_run_and_loses_nothing(
        ewsim: SimHandle) -> None:
    # A first export writes batch after batch, each batch's CreateItem running while the next
    # batch is prepared. The server refusing one of them fails the run in plain words; the
    # next run creates what is missing, once.
    profile = make_profile(ewsim)
    Person.objects.bulk_create([
        Person(organization_id=profile.organization_id, first_name=f"P{i}", last_name="Test",
               email1=f"p{i}@example.com") for i in range(250)])
    ewsim.control.fault("http_401", "CreateItem")
    failed = run_contacts(ewsim, profile)
    assert failed.status == Run.Status.FAILED
    assert "Authentication failed" in failed.message
    run = run_contacts(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    in_exchange = exchange_contacts(ewsim)
    assert len(in_exchange) == 250
    assert sorted(c.first_name for c in in_exchange.values()) == sorted(
        f"P{i}" for i in range(250))
    assert Link.objects.filter(profile=profile).count() == 250
    assert not run_contacts(ewsim, profile).items.exclude(
        action=RunItem.Action.LINK).exists()
