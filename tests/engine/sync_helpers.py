"""A profile whose contacts sync with Alice's ewsim mailbox, and ways to look at both sides."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any, TypeVar

from crm.models import CrmUser, Person
from engine.agendas.contacts import ContactSync
from engine.crmstore.base import CrmBackend
from engine.crmstore.builtin import BuiltinCrm
from engine.mailbox.ews import EwsMailbox
from engine.models import Run
from engine.records import ContactRecord, EventRecord, Kind
from engine.sync import sync
from ewsim.testing import SimHandle
from profiles.models import CrmConnection, MailboxConnection, Organization, SyncProfile
from tests.engine.conftest import access_to
from tests.engine.crmstore.memory import MemoryCrm

SERVICE, SERVICE_PASSWORD = "svc@example.com", "svc-secret"

R = TypeVar("R", ContactRecord, EventRecord)

# Inside the calendar's window (two weeks back, a month ahead) whenever the test runs.
TOMORROW = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(
    hour=9, minute=0, second=0, microsecond=0)


def make_profile(sim: SimHandle, **contact_settings: Any) -> SyncProfile:
    """Alice's profile. Its contacts come from the whole organization unless told otherwise:
    the tests' persons belong to no CRM user (test_contact_scope.py tests the scopes)."""
    from django.contrib.auth.models import User

    contact_settings.setdefault("scope", "organization")

    sim.control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
    organization = Organization.objects.create(name="Acme")
    connection = MailboxConnection(organization=organization, name="ewsim",
                                   ews_url=sim.url, auth_type="basic", username=SERVICE)
    connection.set_secret(SERVICE_PASSWORD)
    connection.save()
    user = User.objects.create_user("alice", "alice@example.com", "pw")
    crm_user = CrmUser.objects.create(organization=organization, name="Alice", login="alice")
    profile = SyncProfile.objects.create(organization=organization, user=user,
                                         mailbox=sim.user, crm_user=crm_user,
                                         connection=connection)
    settings = profile.contactsettings
    for name, value in contact_settings.items():
        setattr(settings, name, value)
    settings.save()
    return profile


def run_contacts(sim: SimHandle, profile: SyncProfile, **options: Any) -> Run:
    profile = SyncProfile.objects.get(pk=profile.pk)   # fresh settings, as a worker would
    node = profile.contactsettings.classification_node_id
    access = access_to(sim, username=SERVICE, secret=SERVICE_PASSWORD, impersonate=True)
    with EwsMailbox(access) as mailbox:
        return ContactSync(profile, mailbox, BuiltinCrm(profile.organization_id, node),
                           **options).run()


def exchange_contacts(sim: SimHandle) -> dict[str, ContactRecord]:
    """Every contact in Alice's Contacts folder, read afresh through the EWS backend."""
    with EwsMailbox(access_to(sim)) as mailbox:
        folder = mailbox.get_folder("contacts", Kind.CONTACTS)
        return {change.ref.id: change.record for page in mailbox.read_changes(folder, None)
                for change in page.changes if isinstance(change.record, ContactRecord)}


def persons(profile: SyncProfile) -> list[Person]:
    return list(Person.objects.filter(organization_id=profile.organization_id))


def run_calendar(sim: SimHandle, profile: SyncProfile, **options: Any) -> Run:
    from engine.agendas.calendar import CalendarSync
    from engine.sync import crm_for

    profile = SyncProfile.objects.get(pk=profile.pk)
    access = access_to(sim, username=SERVICE, secret=SERVICE_PASSWORD, impersonate=True,
                       mailbox=profile.mailbox)
    with EwsMailbox(access) as mailbox:
        return CalendarSync(profile, mailbox, crm_for(profile, "calendar"), **options).run()


def exchange_events(sim: SimHandle, mailbox: str | None = None) -> dict[str, EventRecord]:
    """Every event (singles and series masters) in a Calendar folder, read afresh."""
    with EwsMailbox(access_to(sim, username=SERVICE, secret=SERVICE_PASSWORD, impersonate=True,
                              mailbox=mailbox or sim.user)) as backend:
        folder = backend.get_folder("calendar", Kind.CALENDAR)
        return {change.ref.id: change.record for page in backend.read_changes(folder, None)
                for change in page.changes if isinstance(change.record, EventRecord)}


def run_mail(sim: SimHandle, profile: SyncProfile, **options: Any) -> Run:
    from mailimport.importer import MailImport

    profile = SyncProfile.objects.get(pk=profile.pk)
    access = access_to(sim, username=SERVICE, secret=SERVICE_PASSWORD, impersonate=True,
                       mailbox=profile.mailbox)
    with EwsMailbox(access) as mailbox:
        return MailImport(profile, mailbox, BuiltinCrm(profile.organization_id),
                          **options).run()


def add_contact(sim: SimHandle, given: str, surname: str, *, email: str = "",
                company: str = "", job_title: str = "", department: str = "") -> str:
    """An Exchange contact as a user makes it in Outlook (elements in the schema's order)."""
    xml = (f"<t:Contact><t:DisplayName>{given} {surname}</t:DisplayName>"
           f"<t:GivenName>{given}</t:GivenName><t:CompanyName>{company}</t:CompanyName>")
    if email:
        xml += (f'<t:EmailAddresses><t:Entry Key="EmailAddress1">{email}</t:Entry>'
                "</t:EmailAddresses>")
    if department:
        xml += f"<t:Department>{department}</t:Department>"
    if job_title:
        xml += f"<t:JobTitle>{job_title}</t:JobTitle>"
    xml += f"<t:Surname>{surname}</t:Surname></t:Contact>"
    return sim.control.create_item(sim.user, folder="contacts", xml=xml, tag="Contact")["id"]


def contacts_by_folder(sim: SimHandle) -> dict[str, Counter[str]]:
    """Every contact folder of Alice's mailbox: how many contacts carry each e-mail address."""
    found: dict[str, Counter[str]] = {}
    with EwsMailbox(access_to(sim)) as mailbox:
        for folder in mailbox.list_folders(Kind.CONTACTS):
            found[folder.path] = Counter(
                change.record.email1 for page in mailbox.read_changes(folder, None)
                for change in page.changes if isinstance(change.record, ContactRecord))
    return found


def use_kind(profile: SyncProfile, kind: str) -> None:
    CrmConnection.objects.filter(organization_id=profile.organization_id).update(kind=kind)


def run(profile: SyncProfile, agenda: str) -> Run:
    """One run through the product's entry point, on the profile as a worker reads it."""
    done = sync(SyncProfile.objects.get(pk=profile.pk), agenda)
    assert done.status == Run.Status.SUCCESS, done.message
    return done


def crm_of(profile: SyncProfile) -> CrmBackend:
    """The in-memory CRM as the profile's CRM user sees it: what a person there edits."""
    return MemoryCrm(str(profile.organization_id), str(profile.crm_user_id))


def persons_by_address(crm: CrmBackend) -> dict[str, tuple[str, ContactRecord]]:
    """Every person of the CRM by their first address: (key, record)."""
    return records_by(crm, Kind.CONTACTS, ContactRecord, "email1")


def events_by_subject(crm: CrmBackend) -> dict[str, tuple[str, EventRecord]]:
    """Every event of the CRM by its subject: (key, record)."""
    return records_by(crm, Kind.CALENDAR, EventRecord, "subject")


def records_by(crm: CrmBackend, kind: Kind, record_type: type[R],
               field: str) -> dict[str, tuple[str, R]]:
    """Every record of the kind in the CRM (none deleted) by one of its fields: (key, record)."""
    keys = [change.key for change in crm.changes_since(kind, "") if not change.deleted]
    return {getattr(found.record, field): (key, found.record)
            for key, found in crm.fetch(kind, keys).items()
            if isinstance(found.record, record_type)}


def add_exchange_event(sim: SimHandle, subject: str, start: dt.datetime) -> str:
    """An hour's event in Alice's Calendar, in UTC."""
    end = start + dt.timedelta(hours=1)
    xml = (f"<t:CalendarItem><t:Subject>{subject}</t:Subject>"
           f"<t:Start>{start:%Y-%m-%dT%H:%M:%SZ}</t:Start><t:End>{end:%Y-%m-%dT%H:%M:%SZ}"
           "</t:End></t:CalendarItem>")
    return sim.control.create_item(sim.user, folder="calendar", xml=xml,
                                   tag="CalendarItem")["id"]
