"""`--seed demo`: mailboxes with realistic Czech and English data for the demo and manual tests.

Two users and a service account that may impersonate both:

* `jana.novakova@example.com` / `jana-secret` — a Czech sales rep: contacts with the categories
  Hotline, Instalace and Registrace (her master category list has them in colour, with E-Mail
  and Osobní), a calendar with single, all-day, private and recurring events
  and a meeting shared with Tom, an Inbox and Sent Items with attachments.
* `tom.baker@example.com` / `tom-secret` — an English colleague: a few contacts, the shared meeting,
  a weekly call, mail with an attachment.
* `svc@example.com` / `svc-secret` — the service account a connection uses with impersonation.
* OAuth app `demo-client` / `demo-secret` in tenant `demo-tenant` (app-only, may impersonate all).

Dates are relative to the day the simulator starts, so the events fall inside a profile's default
window (14 days back, 31 ahead) whenever the demo runs.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from .categories import set_categories
from .deliver import message_from_fields
from .itemxml import load_item
from .ns import PARSER, T
from .operations.items import prepare_new
from .store import App, Store

PRAGUE = zoneinfo.ZoneInfo("Europe/Prague")
PRAGUE_WINDOWS_ID = "Central Europe Standard Time"
LONDON = zoneinfo.ZoneInfo("Europe/London")
LONDON_WINDOWS_ID = "GMT Standard Time"

JANA = "jana.novakova@example.com"
TOM = "tom.baker@example.com"
SERVICE = "svc@example.com"
# The mailbox of the demo organization that syncs with Raynet (raynetsim): its own, since a
# mailbox syncs with one CRM.
PETRA = "petra.kralova@example.com"
USERS = {
    JANA: ("jana-secret", "Jana Nováková", "jana"),
    TOM: ("tom-secret", "Tom Baker", "tom"),
    PETRA: ("petra-secret", "Petra Králová", "petra"),
    SERVICE: ("svc-secret", "Sync Service", "svc"),
}


@dataclass
class DemoContact:
    given: str
    surname: str
    email: str
    company: str = ""
    job_title: str = ""
    department: str = ""
    mobile: str = ""
    business_phone: str = ""
    street: str = ""
    city: str = ""
    postal_code: str = ""
    country: str = ""
    categories: list[str] = field(default_factory=list)
    note: str = ""


JANA_CONTACTS = [
    DemoContact("Petr", "Svoboda", "petr.svoboda@stavby-brno.cz", "Stavby Brno s.r.o.",
                "Jednatel", "Vedení", "+420 603 111 222", "+420 541 222 333",
                "Hlinky 12", "Brno", "603 00", "Česká republika", ["Hotline"],
                "Volá kvůli licenci na nové PC."),
    DemoContact("Lucie", "Dvořáková", "lucie.dvorakova@stavby-brno.cz", "Stavby  Brno s.r.o.",
                "Účetní", "Ekonomické oddělení", "+420 604 555 666", city="Brno",
                categories=["Registrace"]),
    DemoContact("Martin", "Černý", "martin.cerny@pekarna-cerny.cz", "Pekárna Černý",
                "Majitel", mobile="+420 777 888 999", street="Náměstí Míru 5", city="Kolín",
                postal_code="280 02", country="Česká republika",
                categories=["Instalace", "Hotline"]),
    DemoContact("Eva", "Procházková", "eva.prochazkova@acme.cz", "ACME s.r.o.",
                "Vedoucí nákupu", "Nákup", "+420 602 123 456", "+420 222 333 444",
                "Vinohradská 48", "Praha 2", "120 00", "Česká republika", ["Registrace"]),
    DemoContact("Tomáš", "Veselý", "tomas.vesely@acme.cz", "Acme s.r.o.", "Správce IT", "IT",
                "+420 731 222 111", categories=["Instalace"]),
    DemoContact("Kateřina", "Horáková", "katerina.horakova@zahradnictvi-horak.cz",
                "Zahradnictví Horák", "Obchodní ředitelka", mobile="+420 736 444 555",
                city="Olomouc", categories=["Hotline"]),
    DemoContact("Jiří", "Němec", "jiri.nemec@seznam.cz", mobile="+420 608 987 654",
                note="Soukromý kontakt, bez firmy."),
    DemoContact("Zuzana", "Marková", "zuzana.markova@autoservis-marek.cz", "Autoservis Marek",
                "Recepční", business_phone="+420 549 876 543", city="Znojmo",
                categories=["Registrace", "Instalace"]),
    DemoContact("David", "Pokorný", "david.pokorny@stavby-brno.cz", "Stavby Brno s.r.o.",
                "Stavbyvedoucí", "Realizace", "+420 605 333 444"),
    DemoContact("Sarah", "Collins", "sarah.collins@northwind.co.uk", "Northwind Traders Ltd",
                "Account Manager", "Sales", "+44 7700 900123", "+44 20 7946 0958",
                "221 Baker Street", "London", "NW1 6XE", "United Kingdom", ["Hotline"]),
]

TOM_CONTACTS = [
    DemoContact("Sarah", "Collins", "sarah.collins@northwind.co.uk", "Northwind Traders Ltd",
                "Account Manager", "Sales", "+44 7700 900123", "+44 20 7946 0958",
                "221 Baker Street", "London", "NW1 6XE", "United Kingdom", ["Hotline"]),
    DemoContact("James", "O'Neill", "james.oneill@contoso.ie", "Contoso Ltd", "CTO",
                mobile="+353 85 123 4567", city="Dublin", country="Ireland",
                categories=["Instalace"]),
    DemoContact("Emma", "Wright", "emma.wright@fabrikam.com", "Fabrikam Inc.",
                "Procurement Lead", "Purchasing", "+1 425 555 0100", city="Redmond",
                country="United States", categories=["Registrace"]),
    DemoContact("Eva", "Procházková", "eva.prochazkova@acme.cz", "ACME s.r.o.",
                "Vedoucí nákupu", "Nákup", "+420 602 123 456"),
]

PETRA_CONTACTS = [
    DemoContact("Karel", "Horák", "karel.horak@elektro-horak.cz", "Elektro Horák s.r.o.",
                "Jednatel", mobile="+420 731 222 333", city="Pardubice"),
    DemoContact("Lenka", "Malá", "lenka.mala@elektro-horak.cz", "Elektro Horák s.r.o.",
                "Účetní", business_phone="+420 466 111 222"),
    DemoContact("Ondřej", "Beneš", "ondrej.benes@agro-benes.cz", "Agro Beneš a.s.",
                "Nákupčí", mobile="+420 604 555 666", note="Volat dopoledne."),
]


# Jana's master category list: the manual's categories with Outlook colours, and one of her
# own that no contact carries yet (Tom keeps a new mailbox's six colour categories).
JANA_CATEGORIES = [{"name": "Hotline", "color": "preset0"},
                   {"name": "Instalace", "color": "preset4"},
                   {"name": "Registrace", "color": "preset7"},
                   {"name": "E-Mail", "color": "preset3"},
                   {"name": "Osobní", "color": "preset12"}]


def _t(tag: str, text: str | None) -> str:
    return f"<t:{tag}>{escape(text)}</t:{tag}>" if text else ""


def _categories(categories: list[str]) -> str:
    if not categories:
        return ""
    return "<t:Categories>" + "".join(_t("String", c) for c in categories) + "</t:Categories>"


def _contact_xml(c: DemoContact) -> str:
    display = f"{c.given} {c.surname}"
    phones = "".join(
        f'<t:Entry Key="{key}">{escape(value)}</t:Entry>'
        for key, value in (("BusinessPhone", c.business_phone), ("MobilePhone", c.mobile)) if value)
    address = ""
    if c.street or c.city:
        address = ('<t:PhysicalAddresses><t:Entry Key="Business">'
                   + _t("Street", c.street) + _t("City", c.city) + _t("CountryOrRegion", c.country)
                   + _t("PostalCode", c.postal_code) + "</t:Entry></t:PhysicalAddresses>")
    return (
        "<t:Contact>" + (f'<t:Body BodyType="Text">{escape(c.note)}</t:Body>' if c.note else "")
        + _categories(c.categories) + _t("FileAs", f"{c.surname}, {c.given}")
        + _t("DisplayName", display) + _t("GivenName", c.given) + _t("CompanyName", c.company)
        + f'<t:EmailAddresses><t:Entry Key="EmailAddress1">{escape(c.email)}</t:Entry>'
          "</t:EmailAddresses>"
        + address + (f"<t:PhoneNumbers>{phones}</t:PhoneNumbers>" if phones else "")
        + _t("Department", c.department) + _t("JobTitle", c.job_title)
        + _t("Surname", c.surname) + "</t:Contact>")


@dataclass
class DemoEvent:
    subject: str
    start: dt.datetime          # aware, in the event's zone
    end: dt.datetime
    windows_zone: str = PRAGUE_WINDOWS_ID
    location: str = ""
    body: str = ""
    all_day: bool = False
    private: bool = False
    categories: list[str] = field(default_factory=list)
    attendees: list[str] = field(default_factory=list)
    organizer: str = ""
    uid: str = ""
    weekly_count: int = 0       # > 0: a weekly series of that many occurrences


def _utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_xml(e: DemoEvent) -> str:
    attendees = ""
    if e.attendees:
        attendees = "<t:RequiredAttendees>" + "".join(
            f"<t:Attendee><t:Mailbox>{_t('EmailAddress', a)}<t:RoutingType>SMTP</t:RoutingType>"
            "</t:Mailbox><t:ResponseType>Accept</t:ResponseType></t:Attendee>"
            for a in e.attendees) + "</t:RequiredAttendees>"
    recurrence = ""
    if e.weekly_count:
        weekday = e.start.strftime("%A")
        recurrence = (
            "<t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval>"
            f"<t:DaysOfWeek>{weekday}</t:DaysOfWeek><t:FirstDayOfWeek>Monday</t:FirstDayOfWeek>"
            "</t:WeeklyRecurrence><t:NumberedRecurrence>"
            f"<t:StartDate>{e.start.date().isoformat()}</t:StartDate>"
            f"<t:NumberOfOccurrences>{e.weekly_count}</t:NumberOfOccurrences>"
            "</t:NumberedRecurrence></t:Recurrence>")
    organizer = ""
    if e.organizer:
        organizer = (f"<t:Organizer><t:Mailbox>{_t('EmailAddress', e.organizer)}"
                     "<t:RoutingType>SMTP</t:RoutingType></t:Mailbox></t:Organizer>")
    body = f'<t:Body BodyType="Text">{escape(e.body)}</t:Body>' if e.body else ""
    return (
        "<t:CalendarItem>" + _t("Subject", e.subject)
        + _t("Sensitivity", "Private" if e.private else "Normal") + body
        + _categories(e.categories) + (_t("UID", e.uid) if e.uid else "")
        + _t("Start", _utc(e.start)) + _t("End", _utc(e.end))
        + _t("IsAllDayEvent", "true" if e.all_day else "false")
        + _t("LegacyFreeBusyStatus", "Free" if e.all_day else "Busy")
        + _t("Location", e.location) + organizer + attendees + recurrence
        + f'<t:StartTimeZone Id="{e.windows_zone}"/><t:EndTimeZone Id="{e.windows_zone}"/>'
        + "</t:CalendarItem>")


def _at(day: dt.date, hour: int, minute: int = 0, zone: dt.tzinfo = PRAGUE) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), zone)


def _next_weekday(day: dt.date, weekday: int) -> dt.date:
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7 or 7)


def _events(today: dt.date) -> dict[str, list[DemoEvent]]:
    shared_uid = uuid.uuid5(uuid.NAMESPACE_URL, f"ewsim-demo-{today}").hex.upper()
    monday = _next_weekday(today, 0)
    meeting_day = today + dt.timedelta(days=3)
    shared = dict(subject="Project review: Northwind rollout / Revize projektu",
                  start=_at(meeting_day, 14), end=_at(meeting_day, 15), location="Teams",
                  organizer=JANA, attendees=[JANA, TOM, "sarah.collins@northwind.co.uk"],
                  uid=shared_uid, body="Status of the Northwind rollout, next steps.")
    jana = [
        DemoEvent("Schůzka: Stavby Brno – nabídka", _at(today + dt.timedelta(days=1), 10),
                  _at(today + dt.timedelta(days=1), 11, 30), location="Hlinky 12, Brno",
                  body="Projít nabídku na licence a instalaci.", categories=["Hotline"],
                  attendees=["petr.svoboda@stavby-brno.cz", "lucie.dvorakova@stavby-brno.cz"]),
        DemoEvent("Instalace u Pekárny Černý", _at(today + dt.timedelta(days=5), 8),
                  _at(today + dt.timedelta(days=5), 12), location="Kolín",
                  categories=["Instalace"], attendees=["martin.cerny@pekarna-cerny.cz"]),
        DemoEvent("Registrace – ACME s.r.o.", _at(today - dt.timedelta(days=6), 13),
                  _at(today - dt.timedelta(days=6), 13, 30), categories=["Registrace"],
                  attendees=["eva.prochazkova@acme.cz"]),
        DemoEvent("Veletrh Stavebnictví Brno",
                  dt.datetime.combine(today + dt.timedelta(days=10), dt.time(), PRAGUE),
                  dt.datetime.combine(today + dt.timedelta(days=12), dt.time(), PRAGUE),
                  all_day=True, location="Výstaviště Brno"),
        DemoEvent("Lékař", _at(today + dt.timedelta(days=2), 7, 30),
                  _at(today + dt.timedelta(days=2), 8, 30), private=True),
        DemoEvent("Porada obchodního týmu", _at(monday - dt.timedelta(days=14), 9),
                  _at(monday - dt.timedelta(days=14), 10), location="Zasedačka 2",
                  weekly_count=12),
        DemoEvent("Plánování roku (mimo okno synchronizace)",
                  _at(today + dt.timedelta(days=90), 9), _at(today + dt.timedelta(days=90), 16)),
        DemoEvent(**shared),
    ]
    thursday = _next_weekday(today, 3)
    tom = [
        DemoEvent("Weekly call with Northwind", _at(thursday - dt.timedelta(days=7), 11, 0, LONDON),
                  _at(thursday - dt.timedelta(days=7), 11, 30, LONDON),
                  windows_zone=LONDON_WINDOWS_ID, weekly_count=8, categories=["Hotline"],
                  attendees=["sarah.collins@northwind.co.uk"]),
        DemoEvent("Contoso installation", _at(today + dt.timedelta(days=8), 9, 0, LONDON),
                  _at(today + dt.timedelta(days=8), 17, 0, LONDON), windows_zone=LONDON_WINDOWS_ID,
                  location="Dublin", categories=["Instalace"],
                  attendees=["james.oneill@contoso.ie"]),
        DemoEvent(**shared),
    ]
    # Single meetings only: Raynet does not hold series yet (docs/raynet.md).
    petra = [
        DemoEvent("Schůzka: Elektro Horák – servisní smlouva", _at(today + dt.timedelta(days=2), 9),
                  _at(today + dt.timedelta(days=2), 10), location="Pardubice",
                  body="Prodloužení servisní smlouvy.",
                  attendees=["karel.horak@elektro-horak.cz"]),
        DemoEvent("Telefonát s Agro Beneš", _at(today - dt.timedelta(days=3), 14),
                  _at(today - dt.timedelta(days=3), 14, 30)),
    ]
    return {JANA: jana, TOM: tom, PETRA: petra}


def _pdf(title: str) -> bytes:
    # A small, valid one-page PDF, so the demo's saved attachments open in a viewer.
    text = title.encode("latin-1", "replace")
    stream = b"BT /F1 18 Tf 72 720 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return out


def _messages(today: dt.date) -> dict[str, list[dict[str, Any]]]:
    def when(days_ago: int, hour: int) -> str:
        return _at(today - dt.timedelta(days=days_ago), hour).isoformat()

    # One e-mail in both mailboxes (same Message-ID): one CRM e-mail linked to both users.
    shared_notes = {
        "folder": "inbox", "subject": "Meeting notes",
        "from": "Sarah Collins <sarah.collins@northwind.co.uk>", "to": [JANA, TOM],
        "received": when(3, 11), "message_id": f"<northwind-notes-{today}@northwind.co.uk>",
        "body": "Hi both, notes from today's call attached.",
        "attachments": [{"name": "notes.txt", "content_type": "text/plain",
                         "content": b"1. Rollout in December\n2. Training\n"}]}
    jana = [
        {"folder": "inbox", "subject": "Nabídka licencí – Stavby Brno",
         "from": "Petr Svoboda <petr.svoboda@stavby-brno.cz>", "to": [JANA],
         "cc": ["lucie.dvorakova@stavby-brno.cz"], "received": when(2, 9),
         "body": "Dobrý den, paní Nováková,\n\nv příloze posílám poptávku na 12 licencí.\n\n"
                 "S pozdravem\nPetr Svoboda",
         "attachments": [{"name": "Poptávka 2026-11.pdf", "content_type": "application/pdf",
                          "content": _pdf("Poptavka 2026-11")}]},
        {"folder": "inbox", "subject": "Fotky z instalace",
         "from": "Martin Černý <martin.cerny@pekarna-cerny.cz>", "to": [JANA],
         "received": when(5, 16), "is_read": True,
         "body": "Posílám fotky serverovny, ať víte, kam to pojede.",
         "attachments": [{"name": "serverovna.jpg", "content_type": "image/jpeg",
                          "content": b"\xff\xd8\xff\xe0" + b"\x00" * 2048 + b"\xff\xd9"},
                         {"name": "instalace.exe", "content_type": "application/octet-stream",
                          "content": b"MZ" + b"\x00" * 512}]},
        {"folder": "inbox", "subject": "Re: Registrace ACME",
         "from": "Eva Procházková <eva.prochazkova@acme.cz>", "to": [JANA],
         "received": when(6, 15), "is_read": True,
         "body": "Děkujeme, registraci jsme obdrželi. Smlouvu přikládám.",
         "attachments": [{"name": "Smlouva ACME.docx",
                          "content_type": "application/vnd.openxmlformats-officedocument."
                                          "wordprocessingml.document",
                          "content": b"PK\x03\x04" + b"demo-docx" * 64}]},
        {"folder": "inbox", "subject": "Newsletter: Novinky v CRM",
         "from": "CRM novinky <newsletter@crm-novinky.example>", "to": [JANA],
         "received": when(1, 7), "body_type": "HTML",
         "body": "<html><body><h1>Novinky</h1><p>Co je nového v listopadu.</p></body></html>"},
        shared_notes,
        {"folder": "sentitems", "subject": "Re: Nabídka licencí – Stavby Brno",
         "from": f"Jana Nováková <{JANA}>", "to": ["petr.svoboda@stavby-brno.cz"],
         "received": when(1, 14), "is_read": True,
         "body": "Dobrý den, pane Svobodo,\n\nnabídku posílám v příloze.\n\nJana Nováková",
         "attachments": [{"name": "Nabídka 2026-117.pdf", "content_type": "application/pdf",
                          "content": _pdf("Nabidka 2026-117")},
                         {"name": "Ceník.xlsx",
                          "content_type": "application/vnd.openxmlformats-officedocument."
                                          "spreadsheetml.sheet",
                          "content": b"PK\x03\x04" + b"demo-xlsx" * 64}]},
        {"folder": "sentitems", "subject": "Termín instalace",
         "from": f"Jana Nováková <{JANA}>", "to": ["martin.cerny@pekarna-cerny.cz"],
         "received": when(4, 10), "is_read": True,
         "body": "Dobrý den, instalaci potvrzuji na příští týden."},
    ]
    tom = [
        shared_notes,
        {"folder": "sentitems", "subject": "Contoso installation plan",
         "from": f"Tom Baker <{TOM}>", "to": ["james.oneill@contoso.ie"],
         "received": when(2, 16), "is_read": True,
         "body": "Hi James, the plan for next week is attached.",
         "attachments": [{"name": "plan.pdf", "content_type": "application/pdf",
                          "content": _pdf("Contoso installation plan")}]},
    ]
    return {JANA: jana, TOM: tom}


def _add(store: Store, mailbox: str, folder: str, xml: str) -> None:
    target = store.folder_by_distinguished(mailbox, folder)
    assert target is not None
    el = etree.fromstring(f'<root xmlns:t="{T}">{xml}</root>'.encode(), PARSER)[0]
    item = load_item(el, target.id, mailbox)
    prepare_new(item, mailbox)
    store.add_item(target, item)


def seed_demo(server: Any, today: dt.date | None = None) -> dict[str, int]:
    """Fill `server`'s store with the demo; returns how many items each mailbox got."""
    store: Store = server.store
    today = today or dt.datetime.now(PRAGUE).date()
    counts: dict[str, int] = {}
    with store.lock:
        add_users(store)
        set_categories(store.mailboxes[JANA], JANA_CATEGORIES)
        store.apps["demo-client"] = App(client_id="demo-client", client_secret="demo-secret",
                                        tenant="demo-tenant")
        events, messages = _events(today), _messages(today)
        for address, contacts in ((JANA, JANA_CONTACTS), (TOM, TOM_CONTACTS),
                                  (PETRA, PETRA_CONTACTS)):
            for contact in contacts:
                _add(store, address, "contacts", _contact_xml(contact))
            for event in events.get(address, ()):
                _add(store, address, "calendar", _event_xml(event))
            for fields in messages.get(address, ()):
                folder = store.folder_by_distinguished(address, fields["folder"])
                assert folder is not None
                store.add_item(folder, message_from_fields(fields))
            counts[address] = (len(contacts) + len(events.get(address, ()))
                               + len(messages.get(address, ())))
    return counts


def add_users(store: Store) -> list[str]:
    """The demo's users and mailboxes that the store lacks (a demo kept from before a user
    was added to it gets that user, with an empty mailbox); returns those added."""
    added = []
    with store.lock:
        for address, (password, name, account) in USERS.items():
            if address in store.users:
                continue
            store.add_user(address, password, name, domain="EXAMPLE", account=account,
                           can_impersonate=["*"] if address == SERVICE else None)
            store.ensure_mailbox(address, name)
            added.append(address)
    return added
