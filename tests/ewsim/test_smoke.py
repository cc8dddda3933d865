from __future__ import annotations

from exchangelib import Contact
from exchangelib.indexed_properties import EmailAddress


def test_an_account_sees_its_distinguished_folders(account):
    assert account.root.name == "root"
    assert account.contacts.name == "Contacts"
    assert account.calendar.name == "Calendar"
    assert account.inbox.name == "Inbox"


def test_a_contact_round_trips(account):
    c = Contact(account=account, folder=account.contacts, given_name="Jana", surname="Nováková",
                display_name="Jana Nováková", company_name="ACME s.r.o.",
                email_addresses=[EmailAddress(label="EmailAddress1", email="jana@acme.cz")],
                crm_id="CRM-1")
    c.save()
    got = account.contacts.get(id=c.id)
    assert got.display_name == "Jana Nováková"
    assert got.email_addresses[0].email == "jana@acme.cz"
    assert got.crm_id == "CRM-1"
