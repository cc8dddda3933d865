from __future__ import annotations

import datetime as dt

import pytest
from exchangelib import CalendarItem, Contact, EWSDate, EWSDateTime, FileAttachment, Message
from exchangelib.errors import ErrorIrresolvableConflict, ErrorItemNotFound
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY, SEND_TO_NONE
from exchangelib.recurrence import Recurrence, WeeklyPattern

from .conftest import TZ


def _contact(account, **kw):
    fields = dict(given_name="Petr", surname="Svoboda", display_name="Petr Svoboda",
                  company_name="Instalace s.r.o.", job_title="Technik", department="Servis",
                  business_homepage="https://example.cz",
                  email_addresses=[EmailAddress(label="EmailAddress1", email="petr@example.cz"),
                                   EmailAddress(label="EmailAddress2", email="p2@example.cz"),
                                   EmailAddress(label="EmailAddress3", email="p3@example.cz")],
                  phone_numbers=[PhoneNumber(label="BusinessPhone", phone_number="+420 1"),
                                 PhoneNumber(label="MobilePhone", phone_number="+420 2")],
                  physical_addresses=[
                      PhysicalAddress(label="Business", street="Hlavní 1", city="Brno",
                                      country="CZ", zipcode="60200"),
                      PhysicalAddress(label="Home", street="Domov 2", city="Praha"),
                      PhysicalAddress(label="Other", city="Ostrava")],
                  body="Poznámka", categories=["Hotline", "Instalace"], crm_id="CRM-7")
    fields.update(kw)
    return Contact(account=account, folder=account.contacts, **fields)


def test_a_contact_keeps_every_product_field(account):
    c = _contact(account)
    c.save()
    got = account.contacts.get(id=c.id)
    assert (got.given_name, got.surname, got.company_name, got.job_title, got.department) == (
        "Petr", "Svoboda", "Instalace s.r.o.", "Technik", "Servis")
    assert got.business_homepage == "https://example.cz"
    assert sorted(e.email for e in got.email_addresses) == [
        "p2@example.cz", "p3@example.cz", "petr@example.cz"]
    assert {p.label: p.phone_number for p in got.phone_numbers} == {
        "BusinessPhone": "+420 1", "MobilePhone": "+420 2"}
    addresses = {a.label: a for a in got.physical_addresses}
    assert addresses["Business"].city == "Brno" and addresses["Home"].street == "Domov 2"
    assert got.body == "Poznámka"
    assert got.categories == ["Hotline", "Instalace"]
    assert got.crm_id == "CRM-7"


def test_updating_a_contact_applies_sets_and_deletes_in_order(account):
    c = _contact(account)
    c.save()
    old_ck = c.changekey
    c.email_addresses = [EmailAddress(label="EmailAddress1", email="new@example.cz")]
    c.physical_addresses = [PhysicalAddress(label="Business", street="Nová 5", city="Brno")]
    c.categories = None
    c.job_title = "Vedoucí"
    c.save(update_fields=["email_addresses", "physical_addresses", "categories", "job_title"])
    assert c.changekey != old_ck
    got = account.contacts.get(id=c.id)
    assert [e.email for e in got.email_addresses] == ["new@example.cz"]
    assert [(a.label, a.street, a.zipcode) for a in got.physical_addresses] == [
        ("Business", "Nová 5", None)]
    assert got.categories is None
    assert got.job_title == "Vedoucí"


def test_a_contact_photo_is_a_contact_attachment(account):
    c = _contact(account)
    c.save()
    c.attach(FileAttachment(name="photo.jpg", content=b"\xff\xd8jpeg", is_contact_photo=True))
    got = account.contacts.get(id=c.id)
    assert got.has_picture is True
    assert got.attachments[0].content == b"\xff\xd8jpeg"


def test_a_stale_change_key_is_an_irresolvable_conflict(account):
    c = _contact(account)
    c.save()
    stale = Contact(account=account, id=c.id, changekey=c.changekey, display_name="A")
    c.display_name = "B"
    c.save(update_fields=["display_name"])
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["display_name"], conflict_resolution="NeverOverwrite")


def test_bulk_create_of_250_contacts_gives_a_result_per_item(account):
    items = [_contact(account, display_name=f"C {i}", crm_id=f"CRM-{i}") for i in range(250)]
    results = account.bulk_create(folder=account.contacts, items=items)
    assert len(results) == 250 and all(r.id for r in results)
    assert account.contacts.all().count() == 250
    fetched = list(account.fetch(ids=[(r.id, r.changekey) for r in results[:5]] +
                                 [("AAMkAmissing", None)], only_fields=["display_name"]))
    assert [f.display_name for f in fetched[:5]] == ["C 0", "C 1", "C 2", "C 3", "C 4"]
    assert isinstance(fetched[5], ErrorItemNotFound)


def test_delete_kinds_remove_or_move_to_deleted_items(account):
    a, b = _contact(account), _contact(account)
    a.save()
    b.save()
    a.delete()
    old_id = b.id
    b.move_to_trash()
    assert account.contacts.all().count() == 0
    trashed = list(account.trash.all().only("display_name"))
    assert len(trashed) == 1 and trashed[0].id != old_id
    with pytest.raises(ErrorItemNotFound):
        account.contacts.get(id=old_id)


def test_moving_an_item_gives_it_a_new_id(account):
    sub = account.contacts / "CRM" if False else None
    assert sub is None
    c = _contact(account)
    c.save()
    old = c.id
    c.move(account.trash)
    assert c.id != old


def test_a_calendar_item_keeps_times_attendees_and_flags(account):
    start = EWSDateTime(2025, 3, 10, 9, 0, tzinfo=TZ)
    ev = CalendarItem(account=account, folder=account.calendar, subject="Kickoff", start=start,
                      end=start + dt.timedelta(hours=1), location="Room 1",
                      body="Agenda", sensitivity="Private", categories=["Registrace"],
                      required_attendees=["bob@example.com"], crm_id="CRM-9")
    ev.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    got = account.calendar.get(id=ev.id)
    assert got.start == start and got.end == start + dt.timedelta(hours=1)
    assert got.start.tzinfo is not None
    assert got.sensitivity == "Private" and got.location == "Room 1"
    assert got.required_attendees[0].mailbox.email_address == "bob@example.com"
    assert got.type == "Single" and got.is_meeting is True and got.crm_id == "CRM-9"
    sent = ewsim_sent(account)
    assert sent[0]["send_meeting_invitations"] == SEND_TO_ALL_AND_SAVE_COPY
    ev.delete(send_meeting_cancellations=SEND_TO_NONE)


def ewsim_sent(account):
    from ewsim.testing import ControlClient
    base = account.protocol.service_endpoint.split("/EWS/")[0]
    return ControlClient(base).sent()


def test_an_all_day_event_reads_back_as_dates(account):
    ev = CalendarItem(account=account, folder=account.calendar, subject="Holiday",
                      start=EWSDate(2025, 5, 1), end=EWSDate(2025, 5, 2), is_all_day=True)
    ev.save()
    got = account.calendar.get(id=ev.id)
    assert got.is_all_day is True
    assert got.start == EWSDate(2025, 5, 1)


def test_a_weekly_series_expands_in_its_own_time_zone_across_dst(account):
    start = EWSDateTime(2025, 3, 17, 9, 0, tzinfo=TZ)   # Monday, CET
    ev = CalendarItem(account=account, folder=account.calendar, subject="Weekly", start=start,
                      end=start + dt.timedelta(hours=1),
                      recurrence=Recurrence(pattern=WeeklyPattern(interval=1, weekdays=[1]),
                                            start=start.date(), number=4))
    ev.save()
    view = list(account.calendar.view(start=EWSDateTime(2025, 3, 1, tzinfo=TZ),
                                      end=EWSDateTime(2025, 5, 1, tzinfo=TZ), max_items=100))
    assert len(view) == 4
    local_hours = [o.start.astimezone(TZ).hour for o in view]
    assert local_hours == [9, 9, 9, 9]          # DST starts 2025-03-30
    assert {o.type for o in view} == {"Occurrence"}
    third = ev.occurrence(3)
    third.refresh()
    assert third.start.astimezone(TZ) == EWSDateTime(2025, 3, 31, 9, 0, tzinfo=TZ)
    master = view[0].recurring_master()
    master.refresh()
    assert master.type == "RecurringMaster"
    view[1].delete()
    assert len(list(account.calendar.view(start=EWSDateTime(2025, 3, 1, tzinfo=TZ),
                                          end=EWSDateTime(2025, 5, 1, tzinfo=TZ),
                                          max_items=100))) == 3


def test_a_message_with_attachments_round_trips(account):
    m = Message(account=account, folder=account.drafts, subject="Nabídka", body="Dobrý den",
                to_recipients=["bob@example.com"], cc_recipients=["carol@example.com"],
                attachments=[FileAttachment(name="offer.pdf", content=b"%PDF-1.4 x" * 1000)])
    m.save()
    got = account.drafts.get(id=m.id)
    assert got.subject == "Nabídka"
    assert got.message_id.startswith("<")
    assert got.to_recipients[0].email_address == "bob@example.com"
    assert got.has_attachments is True
    att = got.attachments[0]
    with att.fp as fp:
        assert fp.read() == b"%PDF-1.4 x" * 1000
    got.detach(att)
    assert account.drafts.get(id=m.id).attachments == []


def test_several_attachments_are_read_in_one_get_attachment_each_found_or_not(ewsim, account):
    from exchangelib.attachments import AttachmentId
    from exchangelib.services import GetAttachment

    contents = [b"%PDF-1.4 first" * 100, b"second", b""]
    m = Message(account=account, folder=account.drafts, subject="Podklady",
                attachments=[FileAttachment(name=f"{i}.pdf", content=content)
                             for i, content in enumerate(contents)])
    m.save()
    ids = [a.attachment_id.id for a in account.drafts.get(id=m.id).attachments]
    asked = [ids[0], "AAMkAGV3c2ltLW5vLXN1Y2g=", ids[1], ids[2], ids[0]]
    ewsim.control.reset_counters()
    results = list(GetAttachment(account=account).call(
        items=[AttachmentId(id=i) for i in asked], include_mime_content=False, body_type=None,
        filter_html_content=None, additional_fields=None))
    assert ewsim.control.counters() == {"GetAttachment": 1}
    assert ewsim.control.ids_asked() == {"GetAttachment": 5}
    # A response message per id, in order: the one not found is an error of its own.
    assert isinstance(results[1], ErrorItemNotFound)
    found = [r for i, r in enumerate(results) if i != 1]
    assert [r.attachment_id.id for r in found] == [ids[0], ids[1], ids[2], ids[0]]
    assert [r._content or b"" for r in found] == [contents[0], contents[1], b"", contents[0]]


def test_an_item_attachment_is_readable(account):
    inner = Message(subject="inner", body="hello")
    from exchangelib import ItemAttachment
    m = Message(account=account, folder=account.drafts, subject="outer")
    m.save()
    m.attach(ItemAttachment(name="fwd", item=inner))
    got = account.drafts.get(id=m.id)
    assert got.attachments[0].item.subject == "inner"


def test_sending_to_a_simulated_mailbox_delivers_to_its_inbox(ewsim, account):
    ewsim.server.store.add_user("bob@example.com", "bob-pw")
    Message(account=account, subject="Hi Bob", body="x",
            to_recipients=["bob@example.com"]).send_and_save()
    assert account.sent.all().count() == 1
    from .conftest import make_account
    bob = make_account(ewsim, "bob@example.com", "bob-pw")
    assert [m.subject for m in bob.inbox.all()] == ["Hi Bob"]


def test_mail_delivered_from_raw_mime_keeps_headers_and_attachments(ewsim, account):
    from email.message import EmailMessage
    mime = EmailMessage()
    mime["Subject"] = "Registrace"
    mime["From"] = "Zákazník <customer@example.org>"
    mime["To"] = "alice@example.com"
    mime["Message-ID"] = "<abc@example.org>"
    mime.set_content("Dobrý den")
    mime.add_attachment(b"x" * 3_000_000, maintype="application", subtype="pdf",
                        filename="big.pdf")
    ewsim.control.deliver(ewsim.user, mime=mime.as_bytes())
    msg = account.inbox.all().only("subject", "author", "message_id", "attachments")[0]
    assert msg.subject == "Registrace" and msg.message_id == "<abc@example.org>"
    assert msg.author.email_address == "customer@example.org"
    with msg.attachments[0].fp as fp:
        total = 0
        while chunk := fp.read(1 << 20):
            total += len(chunk)
    assert total == 3_000_000


def test_raw_mime_keeps_every_recipient_of_a_header_and_attached_mail_as_an_item(
        ewsim, account):
    from email.message import EmailMessage

    from exchangelib import ItemAttachment
    inner = EmailMessage()
    inner["Subject"] = "Původní dotaz"
    inner["From"] = "customer@example.org"
    inner.set_content("Original")
    mime = EmailMessage()
    mime["Subject"] = "Fwd"
    mime["From"] = "bob@example.com"
    mime["To"] = "Alice <alice@example.com>, Dan <dan@example.com>"
    mime.set_content("See below")
    mime.add_attachment(inner)
    ewsim.control.deliver(ewsim.user, mime=mime.as_bytes())
    msg = account.inbox.all().only("to_recipients", "attachments")[0]
    assert [r.email_address for r in msg.to_recipients] == ["alice@example.com",
                                                            "dan@example.com"]
    (attached,) = msg.attachments
    assert isinstance(attached, ItemAttachment) and attached.name == "Původní dotaz"
    assert b"Subject:" in attached.item.mime_content


def test_an_attendees_copy_of_a_meeting_has_its_organizer_and_answer(ewsim, account):
    xml = ("<t:CalendarItem><t:Subject>Review</t:Subject>"
           "<t:Start>2030-03-22T14:00:00Z</t:Start><t:End>2030-03-22T15:00:00Z</t:End>"
           "<t:Organizer><t:Mailbox><t:EmailAddress>carol@partner.example</t:EmailAddress>"
           "</t:Mailbox></t:Organizer></t:CalendarItem>")
    copy = ewsim.control.create_item(account.primary_smtp_address, folder="calendar", xml=xml,
                                     tag="CalendarItem")["id"]
    got = account.calendar.get(id=copy)
    assert got.organizer.email_address == "carol@partner.example"
    assert (got.my_response_type, got.is_cancelled) == ("NoResponseReceived", False)
    ewsim.control.update_item(copy, xml="<t:CalendarItem><t:MyResponseType>Decline"
                                        "</t:MyResponseType><t:IsCancelled>true"
                                        "</t:IsCancelled></t:CalendarItem>")
    got = account.calendar.get(id=copy)
    assert (got.my_response_type, got.is_cancelled) == ("Decline", True)
    start = EWSDateTime(2030, 3, 10, 9, 0, tzinfo=TZ)
    own = CalendarItem(account=account, folder=account.calendar, subject="Own", start=start,
                       end=start + dt.timedelta(hours=1))
    own.save()
    got = account.calendar.get(id=own.id)
    assert got.my_response_type == "Organizer"
    assert got.organizer.email_address == account.primary_smtp_address
