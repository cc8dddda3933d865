"""Ids Exchange cannot parse, end to end: the engine treats them as items gone from Exchange.

Exchange answers ErrorInvalidIdMalformed for an Id it cannot parse and ErrorItemNotFound for
one that names nothing (ResponseCode,
https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsecode).
A link or a folder may hold such an id when it was stored from another source (another
server, a copied configuration); to a run it names nothing in this mailbox.
"""

from __future__ import annotations

import datetime as dt

import pytest

from crm.models import Person
from engine.mailbox.base import FolderInfo, FolderNotFound
from engine.mailbox.ews import EwsMailbox
from engine.models import Link, Run, RunItem
from engine.records import Kind
from ewsim.testing import SimHandle

from .sync_helpers import exchange_contacts, make_profile, persons, run_contacts
from .test_contacts_sync import add_exchange_contact

pytestmark = pytest.mark.django_db(transaction=True)

FOREIGN_ID = "id kept from another server"


@pytest.mark.parametrize("remote_id", [FOREIGN_ID, "AAMkAGI2TG93AAA="])
def test_a_link_to_an_id_exchange_cannot_parse_is_handled_as_one_that_names_nothing(
        ewsim: SimHandle, remote_id: str) -> None:
    # The second id parses but names nothing (ErrorItemNotFound): both take the same course.
    profile = make_profile(ewsim)
    item_id = add_exchange_contact(ewsim, "Petr", "Svoboda", "petr@stavby.cz")
    run_contacts(ewsim, profile)
    Link.objects.update(remote_id=remote_id)
    petr = Person.objects.get()
    petr.job_title = "CEO"
    petr.save()
    first = run_contacts(ewsim, profile)
    assert (first.status, [(i.action, i.detail) for i in first.items.all()]) == (
        Run.Status.PARTIAL,
        [(RunItem.Action.ERROR, "The item is not in the mailbox any more. (tried again next run)")])
    # The run that tries again finds the contact by its stamp and stops syncing it, as for any
    # item gone from its id; the CRM keeps its person, Exchange its contact.
    second = run_contacts(ewsim, profile)
    assert second.status == Run.Status.SUCCESS
    assert [i.action for i in second.items.all()] == [RunItem.Action.UNLINK]
    assert Link.objects.get().state == Link.State.UNLINKED
    assert [p.job_title for p in persons(profile)] == ["CEO"]
    assert exchange_contacts(ewsim)[item_id].job_title != "CEO"


@pytest.mark.parametrize("folder_id", [FOREIGN_ID, "AAMkAGI2TG93AAA="])
def test_reading_a_folder_whose_id_exchange_cannot_parse_is_folder_not_found(
        mailbox: EwsMailbox, folder_id: str) -> None:
    # GetFolder (choosing the folder) said so already; a stored id read without it, as a run
    # reads from its saved state, says the same, never "an empty folder".
    gone = "no longer exists in the mailbox"
    contacts = FolderInfo(id=folder_id, path="Contacts/CRM", kind=Kind.CONTACTS)
    with pytest.raises(FolderNotFound, match=gone):
        list(mailbox.read_changes(contacts, "a saved state"))
    calendar = FolderInfo(id=folder_id, path="Calendar/CRM", kind=Kind.CALENDAR)
    start = dt.datetime(2030, 3, 1, tzinfo=dt.UTC)
    with pytest.raises(FolderNotFound, match=gone):
        list(mailbox.read_window(calendar, start, start + dt.timedelta(days=30)))
