"""The demo data (`--seed demo`) read back through exchangelib as the product would read it."""

from __future__ import annotations

import datetime as dt

from exchangelib import IMPERSONATION, EWSDateTime, FileAttachment

from ewsim.seed import JANA, PRAGUE, TOM, seed_demo

from .conftest import TZ, make_account


def _as_service(ewsim, mailbox: str):
    return make_account(ewsim, "svc@example.com", "svc-secret", access_type=IMPERSONATION,
                        primary=mailbox)


def test_demo_contacts_have_czech_data_and_the_product_categories(ewsim):
    seed_demo(ewsim.server)
    jana = _as_service(ewsim, JANA)
    contacts = list(jana.contacts.all().only("display_name", "company_name", "categories",
                                             "email_addresses"))
    assert len(contacts) == 10
    by_name = {c.display_name: c for c in contacts}
    assert by_name["Martin Černý"].categories == ["Instalace", "Hotline"]
    assert by_name["Martin Černý"].email_addresses[0].email == "martin.cerny@pekarna-cerny.cz"
    categories = {cat for c in contacts for cat in (c.categories or [])}
    assert {"Hotline", "Instalace", "Registrace"} <= categories
    # Two spellings of one company, for the case- and space-insensitive company matching.
    assert {"Stavby Brno s.r.o.", "Stavby  Brno s.r.o."} <= {c.company_name for c in contacts}


def test_demo_calendar_has_single_all_day_private_recurring_and_shared_events(ewsim):
    today = dt.date(2026, 11, 25)
    seed_demo(ewsim.server, today=today)
    jana, tom = _as_service(ewsim, JANA), _as_service(ewsim, TOM)
    start = EWSDateTime.from_datetime(dt.datetime.combine(today - dt.timedelta(days=14),
                                                          dt.time(), PRAGUE))
    end = EWSDateTime.from_datetime(dt.datetime.combine(today + dt.timedelta(days=31),
                                                        dt.time(), PRAGUE))
    view = list(jana.calendar.view(start=start, end=end))
    subjects = [e.subject for e in view]
    assert "Plánování roku (mimo okno synchronizace)" not in subjects
    assert subjects.count("Porada obchodního týmu") >= 6   # weekly series, expanded
    weekly = [e for e in view if e.subject == "Porada obchodního týmu"]
    assert {e.start.astimezone(TZ).hour for e in weekly} == {9}   # 09:00 Prague across DST
    assert {e.type for e in weekly} == {"Occurrence"}
    assert next(e for e in view if e.subject == "Lékař").sensitivity == "Private"
    assert next(e for e in view if e.subject.startswith("Veletrh")).is_all_day
    shared = [e for e in view if e.subject.startswith("Project review")]
    tom_shared = [e for e in tom.calendar.view(start=start, end=end)
                  if e.subject.startswith("Project review")]
    assert len(shared) == len(tom_shared) == 1
    assert shared[0].uid == tom_shared[0].uid   # one meeting, two mailboxes


def test_demo_mail_has_attachments_in_inbox_and_sent_items(ewsim):
    seed_demo(ewsim.server)
    jana = _as_service(ewsim, JANA)
    inbox = list(jana.inbox.all().only("subject", "attachments", "message_id"))
    sent = list(jana.sent.all().only("subject", "attachments"))
    assert len(inbox) == 5 and len(sent) == 2
    offer = next(m for m in inbox if m.subject == "Nabídka licencí – Stavby Brno")
    (pdf,) = offer.attachments
    assert isinstance(pdf, FileAttachment) and pdf.name == "Poptávka 2026-11.pdf"
    assert pdf.content.startswith(b"%PDF-1.4") and pdf.content.rstrip().endswith(b"%%EOF")
    names = {a.name for m in inbox + sent for a in m.attachments or []}
    assert {"serverovna.jpg", "instalace.exe", "Smlouva ACME.docx", "Ceník.xlsx"} <= names
    # The same e-mail in two mailboxes has one Message-ID (one CRM e-mail, two users).
    notes_id = next(m.message_id for m in inbox if m.subject == "Meeting notes")
    tom = _as_service(ewsim, TOM)
    assert notes_id in {m.message_id for m in tom.inbox.all().only("message_id")}


def test_demo_users_can_sign_in_with_their_own_passwords(ewsim):
    seed_demo(ewsim.server)
    assert make_account(ewsim, TOM, "tom-secret").contacts.all().count() == 4
