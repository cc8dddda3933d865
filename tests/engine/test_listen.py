"""The listener queues a sync within seconds of a change in Exchange or in the CRM."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from crm.models import Person
from engine.listen import Listener
from ewsim.testing import SimHandle
from profiles.models import SyncProfile

from .sync_helpers import make_profile

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listening(ewsim: SimHandle) -> Iterator[tuple[Listener, list[tuple[int, str, float]]]]:
    queued: list[tuple[int, str, float]] = []
    started = time.monotonic()

    def enqueue(profile: SyncProfile, agenda: str) -> None:
        queued.append((profile.pk, agenda, time.monotonic() - started))

    ewsim.control.call("POST", "settings", {"notification_minute_seconds": 2})
    listener = Listener(enqueue, debounce=0.3, crm_poll=0.1, minutes=1)
    yield listener, queued     # each test starts it once its profile exists
    listener.stop.set()


def _wait(queued: list[tuple[int, str, float]], agenda: str, limit: float = 5.0) -> float:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for _, found, _ in queued:
            if found == agenda:
                return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"no {agenda} sync queued within {limit} s: {queued}")


def test_a_change_in_exchange_queues_the_agenda_of_its_folder(ewsim: SimHandle,
                                                               listening) -> None:  # type: ignore[no-untyped-def]
    listener, queued = listening
    profile = make_profile(ewsim)
    threading.Thread(target=listener.run, daemon=True).start()
    time.sleep(1.0)                        # the watcher subscribes
    changed = time.monotonic()
    ewsim.control.create_item(ewsim.user, folder="contacts", tag="Contact",
                              xml="<t:Contact><t:DisplayName>New</t:DisplayName></t:Contact>")
    assert _wait(queued, "contacts") - changed < 3
    assert all(pk == profile.pk for pk, _, _ in queued)


def test_a_crm_change_queues_the_profiles_it_concerns_once_per_burst(ewsim: SimHandle,
                                                                     listening) -> None:  # type: ignore[no-untyped-def]
    listener, queued = listening
    profile = make_profile(ewsim)
    threading.Thread(target=listener.run, daemon=True).start()
    time.sleep(0.5)
    for i in range(5):
        Person.objects.create(organization_id=profile.organization_id, first_name=f"P{i}")
    _wait(queued, "contacts")
    time.sleep(0.6)
    assert [a for _, a, _ in queued].count("contacts") == 1


def test_an_edit_of_an_existing_crm_person_queues_its_contacts(ewsim: SimHandle,
                                                                listening) -> None:  # type: ignore[no-untyped-def]
    # The journal keeps one row per object and an edit moves it to a new revision in place:
    # a listener following row ids alone never saw edits, only creations.
    listener, queued = listening
    profile = make_profile(ewsim)
    existing = Person.objects.create(organization_id=profile.organization_id, first_name="Eva")
    threading.Thread(target=listener.run, daemon=True).start()
    time.sleep(0.5)
    assert queued == []
    existing.job_title = "Accountant"
    existing.save()
    _wait(queued, "contacts")
