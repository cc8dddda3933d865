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
