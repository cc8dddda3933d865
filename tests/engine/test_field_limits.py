"""CRM values longer than Exchange keeps (engine/mailbox/limits.py, engine/fitting.py), end to
end through `engine.sync.sync`, with ewsim over HTTP (it refuses an over-long surname and cuts
a subject, as Exchange does: tests/ewsim/test_field_limits.py) and the in-memory CRM, which
holds any length (the built-in CRM's own columns are shorter than Exchange's limits).

What a user expects, and these tests hold the engine to:
- the record reaches Exchange with the long values cut, never as a failed item, and the other
  records of the batch are written as usual; the history says what was shortened;
- the CRM keeps the full values: the cut copy in Exchange is the same record, so the next run
  changes nothing on either side;
- an edit of another field in Outlook reaches the CRM and leaves the CRM's long values whole;
- an edit of the shortened field itself in Outlook is a real edit: it reaches the CRM.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from engine.models import RunItem
from engine.reasons import known
from engine.records import ContactRecord, EventRecord, Kind
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from tests.engine.crmstore import memory_store
from tests.engine.graph_sync_helpers import make_graph_profile
from tests.engine.sync_helpers import (
    TOMORROW,
    crm_of,
    exchange_contacts,
    exchange_events,
    make_profile,
    run,
    use_kind,
)

pytestmark = pytest.mark.django_db(transaction=True)

SURNAME = "Nováková-" + "x" * 291            # 300 characters
JOB_TITLE = "Vedoucí " + "y" * 392           # 400 characters
SUBJECT = "Porada " + "z" * 293              # 300 characters
LOCATION = "Brno " + "w" * 295               # 300 characters


@pytest.fixture(params=["ews", "graph"])
def profile(request: pytest.FixtureRequest, ewsim: SimHandle) -> Iterator[SyncProfile]:
    """Alice's profile through either kind of connection, its organization on the in-memory
    CRM."""
    profile = make_profile(ewsim) if request.param == "ews" else make_graph_profile(ewsim)
    use_kind(profile, "memory")
    memory_store.forget(str(profile.organization_id))
    yield profile
    memory_store.forget(str(profile.organization_id))


def test_a_contact_too_long_for_exchange_is_written_cut_and_the_crm_keeps_it_whole(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    crm = crm_of(profile)
    jana = crm.create(Kind.CONTACTS, ContactRecord(
        first_name="Jana", last_name=SURNAME, job_title=JOB_TITLE, email1="jana@acme.cz"), "")
    for first, address in (("Eva", "eva@acme.cz"), ("Petr", "petr@acme.cz")):
        assert crm.create(Kind.CONTACTS, ContactRecord(first_name=first, last_name="Nová",
                                                       email1=address), "").ok

    first = run(profile, "contacts")
    assert first.remote_created == 3 and not first.items.filter(action=RunItem.Action.ERROR)
    in_exchange = {r.email1: (item_id, r) for item_id, r in exchange_contacts(ewsim).items()}
    jana_id, copy = in_exchange["jana@acme.cz"]
    assert (copy.last_name, copy.job_title) == (SURNAME[:255], JOB_TITLE[:255])
    assert in_exchange["eva@acme.cz"][1].last_name == "Nová"
    details = sorted(first.items.filter(action=RunItem.Action.CREATE_REMOTE)
                     .values_list("detail", flat=True))
    assert details == ["new in the CRM", "new in the CRM",
                       "new in the CRM — Shortened to fit Exchange: job_title, last_name; "
                       "the CRM keeps the full text."]
    assert known(details[-1])

    assert run(profile, "contacts").items.count() == 0        # the cut copy is no change

    ewsim.control.update_item(jana_id, Department="Nákup")
    edited = run(profile, "contacts")
    assert (edited.crm_updated, edited.remote_updated) == (1, 0)
    kept = crm.fetch(Kind.CONTACTS, [jana.key])[jana.key].record
    assert (kept.last_name, kept.job_title, kept.department) == (SURNAME, JOB_TITLE, "Nákup")
    assert run(profile, "contacts").items.count() == 0

    ewsim.control.update_item(jana_id, Surname="Nováková")    # the shortened field itself
    assert run(profile, "contacts").crm_updated == 1
    kept = crm.fetch(Kind.CONTACTS, [jana.key])[jana.key].record
    assert (kept.last_name, kept.job_title) == ("Nováková", JOB_TITLE)


def test_an_event_too_long_for_exchange_is_written_cut_and_an_outlook_edit_keeps_it_whole(
        ewsim: SimHandle, profile: SyncProfile) -> None:
    crm = crm_of(profile)
    start = TOMORROW + dt.timedelta(hours=2)
    event = crm.create(Kind.CALENDAR, EventRecord(
        subject=SUBJECT, location=LOCATION, start=start, end=start + dt.timedelta(hours=1),
        time_zone="Europe/Prague"), "")
    assert event.ok, event

    first = run(profile, "calendar")
    assert first.remote_created == 1
    ((item_id, copy),) = exchange_events(ewsim).items()
    assert (copy.subject, copy.location) == (SUBJECT[:255], LOCATION[:255])
    detail = first.items.get(action=RunItem.Action.CREATE_REMOTE).detail
    assert "Shortened to fit Exchange: location, subject;" in detail and known(detail)
    assert run(profile, "calendar").items.count() == 0

    ewsim.control.update_item(item_id, Sensitivity="Private")
    assert run(profile, "calendar").crm_updated == 1
    kept = crm.fetch(Kind.CALENDAR, [event.key])[event.key].record
    assert (kept.subject, kept.location, kept.private) == (SUBJECT, LOCATION, True)
    assert run(profile, "calendar").items.count() == 0
