"""The listener queues a sync within seconds of a change in Exchange or in the CRM."""

from __future__ import annotations

import time

import pytest

from crm.models import Person
from ewsim.testing import SimHandle

from .listen_helpers import new_contact, queued_for, streamed, until
from .sync_helpers import make_profile

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_change_in_exchange_queues_the_agenda_of_its_folder(ewsim: SimHandle,
                                                               listen) -> None:  # type: ignore[no-untyped-def]
    profile = make_profile(ewsim)
    _, queued = listen(minute_seconds=2.0)
    until(lambda: ewsim.user in streamed(ewsim), "the watcher subscribed")
    changed = time.monotonic()
    new_contact(ewsim, ewsim.user)
    until(lambda: queued_for(queued, profile), "a contacts sync")
    assert time.monotonic() - changed < 3
    assert all(pk == profile.pk for pk, _ in queued)


def test_a_crm_change_queues_the_profiles_it_concerns_once_per_burst(ewsim: SimHandle,
                                                                     listen) -> None:  # type: ignore[no-untyped-def]
    profile = make_profile(ewsim)
    _, queued = listen(minute_seconds=2.0)
    # Once it watches, it has read where the CRM's journal stands.
    until(lambda: ewsim.user in streamed(ewsim), "the listener started")
    for i in range(5):
        Person.objects.create(organization_id=profile.organization_id, first_name=f"P{i}")
    until(lambda: queued_for(queued, profile), "a contacts sync")
    time.sleep(0.6)
    assert [a for _, a in queued].count("contacts") == 1


def test_an_edit_of_an_existing_crm_person_queues_its_contacts(ewsim: SimHandle,
                                                                listen) -> None:  # type: ignore[no-untyped-def]
    # The journal keeps one row per object and an edit moves it to a new revision in place:
    # a listener following row ids alone never saw edits, only creations.
    profile = make_profile(ewsim)
    existing = Person.objects.create(organization_id=profile.organization_id, first_name="Eva")
    _, queued = listen(minute_seconds=2.0)
    until(lambda: ewsim.user in streamed(ewsim), "the listener started")
    assert queued == []
    existing.job_title = "Accountant"
    existing.save()
    until(lambda: queued_for(queued, profile), "a contacts sync")
