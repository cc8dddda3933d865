"""Field lengths as Exchange holds them (ewsim/limits.py): a subject is cut to 255 characters,
a contact's given name, middle name or surname over 255 is refused with ErrorPropertyUpdate
(that item only), other text fields are kept.

Microsoft's documentation: "Subject" (EWS XML elements reference, learn.microsoft.com/
en-us/exchange/client-developer/web-service-reference/subject): "The subject is limited to 255
characters"; "ErrorPropertyUpdate" in ResponseCode (learn.microsoft.com/en-us/exchange/
client-developer/web-service-reference/responsecode); one response message per item of a
CreateItem request ("CreateItem operation", learn.microsoft.com/en-us/exchange/client-developer/
web-service-reference/createitem-operation). The 255 of the names is not documented (see
ewsim/limits.py for what is known).

exchangelib checks these very lengths before sending (its CharField), as not every client
does: the tests lift that check to send what such a client would.
"""

from __future__ import annotations

import datetime as dt

import pytest
from exchangelib import CalendarItem, Contact, EWSDateTime
from exchangelib.errors import ErrorPropertyUpdate, ResponseMessageError
from exchangelib.services import CreateItem

from .conftest import TZ
from .graph.client import Graph


@pytest.fixture
def unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """exchangelib sends over-long names and subjects, as a client that does not check."""
    for cls, name in ((Contact, "given_name"), (Contact, "middle_name"),
                      (Contact, "surname"), (CalendarItem, "subject")):
        monkeypatch.setattr(cls.get_field_by_fieldname(name), "max_length", 10_000)


class PerItemCreate(CreateItem):
    """CreateItem answering each item's error as that item's result (exchangelib's own
    bulk_create raises on ErrorPropertyUpdate, losing the other items' answers)."""

    ERRORS_TO_CATCH_IN_RESPONSE = ResponseMessageError


def _event(account, subject: str) -> CalendarItem:
    start = EWSDateTime(2026, 3, 2, 9, 0, tzinfo=TZ)
    return CalendarItem(account=account, folder=account.calendar, subject=subject,
                        start=start, end=start + dt.timedelta(hours=1))


def test_a_subject_over_255_characters_is_cut_and_the_item_saved(account, unchecked):
    event = _event(account, "S" * 250 + "abcdefghij")
    event.save()
    assert account.calendar.get(id=event.id).subject == "S" * 250 + "abcde"
    event.subject = "T" * 300
    event.save(update_fields=["subject"])
    assert account.calendar.get(id=event.id).subject == "T" * 255


def test_a_subject_is_cut_by_utf16_units_never_through_an_emoji(account, unchecked):
    # 254 letters and an emoji (two UTF-16 units) are 256 units: the emoji goes whole.
    event = _event(account, "x" * 254 + "\U0001F600")
    event.save()
    assert account.calendar.get(id=event.id).subject == "x" * 254


def test_one_over_long_surname_is_refused_and_the_other_contacts_of_the_request_saved(
        account, unchecked):
    results = list(PerItemCreate(account=account).call(folder=account.contacts, items=[
        Contact(display_name="Jana", given_name="Jana", surname="N" * 255),
        Contact(display_name="Petr", given_name="Petr", surname="S" * 256),
        Contact(display_name="Eva", given_name="Eva",
                middle_name="\U0001F600" * 128),   # 256 UTF-16 units
        Contact(display_name="Karel", given_name="Karel", surname="Dvořák", job_title="J" * 400),
    ], message_disposition="SaveOnly", send_meeting_invitations="SendToNone"))
    assert [type(r) for r in results][1:3] == [ErrorPropertyUpdate, ErrorPropertyUpdate]
    assert not isinstance(results[0], Exception) and not isinstance(results[3], Exception)
    saved = {c.given_name: c for c in account.contacts.all()}
    assert set(saved) == {"Jana", "Karel"}
    assert saved["Jana"].surname == "N" * 255
    # No documented limit, and a live server keeps 400 characters: kept.
    assert saved["Karel"].job_title == "J" * 400


def test_a_change_to_an_over_long_given_name_is_refused_whole(account, unchecked):
    contact = Contact(account=account, folder=account.contacts, display_name="Jana",
                      given_name="Jana", surname="Nováková", job_title="Technik")
    contact.save()
    changekey = contact.changekey
    contact.given_name = "G" * 300
    contact.job_title = "Vedoucí"
    with pytest.raises(ErrorPropertyUpdate):
        contact.save(update_fields=["job_title", "given_name"])
    got = account.contacts.get(id=contact.id)
    assert (got.given_name, got.job_title, got.changekey) == ("Jana", "Technik", changekey)


def test_long_company_department_and_location_are_kept(account):
    contact = Contact(account=account, folder=account.contacts, display_name="Jana",
                      given_name="Jana", company_name="C" * 400, department="D" * 400)
    contact.save()
    got = account.contacts.get(id=contact.id)
    assert (got.company_name, got.department) == ("C" * 400, "D" * 400)
    event = _event(account, "Porada")
    event.location = "L" * 400
    event.save()
    assert account.calendar.get(id=event.id).location == "L" * 400


def test_graph_refuses_an_over_long_surname_and_cuts_a_subject(ewsim):
    # Graph's Outlook endpoints answer with Exchange's codes, as a 400.
    graph = Graph.connect(ewsim)
    refused = graph.post("contacts", {"givenName": "Jana", "surname": "N" * 256})
    assert (refused.status, refused.code) == (400, "ErrorPropertyUpdate")
    assert graph.get("contacts").json["value"] == []
    contact = graph.post("contacts", {"givenName": "Jana", "surname": "Nováková"}).json
    patched = graph.patch(f"contacts/{contact['id']}",
                          {"givenName": "G" * 256, "jobTitle": "Vedoucí"})
    assert (patched.status, patched.code) == (400, "ErrorPropertyUpdate")
    got = graph.get(f"contacts/{contact['id']}").json
    assert (got["givenName"], got["jobTitle"]) == ("Jana", None)
    event = graph.post("events", {
        "subject": "S" * 300,
        "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "Europe/Prague"},
        "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "Europe/Prague"}})
    assert event.status == 201 and event.json["subject"] == "S" * 255
