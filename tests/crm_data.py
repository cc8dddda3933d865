"""A small, complete set of CRM records for one organization (one of each kind)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm.models import (
    ClassificationNode,
    Company,
    CrmUser,
    Document,
    DocumentCategory,
    Email,
    Event,
    EventCategory,
    EventStatus,
    Person,
)
from profiles.models import CategoryPairing, MailFolder, Organization, SyncProfile


def make_crm_records(organization: Organization, profile: SyncProfile | None = None) -> Person:
    owner = CrmUser.objects.create(organization=organization, name="Pavel Bartoš",
                                   login=f"pbartos-{organization.pk}")
    company = Company.objects.create(organization=organization, name="ACME s.r.o.")
    customers = ClassificationNode.objects.create(organization=organization, name="Zákazníci")
    branch = ClassificationNode.objects.create(organization=organization, name="Praha",
                                               parent=customers)
    person = Person.objects.create(organization=organization, first_name="Jana",
                                   last_name="Nováková", email1="jana@acme.example")
    person.companies.add(company)
    person.classification_nodes.add(branch)
    hotline = EventCategory.objects.create(organization=organization, name="HOTLINE")
    incoming = EventStatus.objects.create(organization=organization, name="Příchozí")
    start = datetime(2026, 11, 24, 9, tzinfo=UTC)
    event = Event.objects.create(organization=organization, owner=owner, subject="Hotline call",
                                 start=start, end=start + timedelta(hours=1),
                                 time_zone="Europe/Prague", category=hotline, status=incoming,
                                 uid=f"meeting-{organization.pk}")
    event.persons.add(person)
    email = Email.objects.create(organization=organization, message_id=f"<1@{organization.pk}>",
                                 subject="Offer", sender_address="jana@acme.example")
    email.persons.add(person)
    attachments = DocumentCategory.objects.create(organization=organization, name="Příloha")
    Document.objects.create(organization=organization, root="/srv/share", path="a/offer.pdf",
                            original_name="offer.pdf", category=attachments, size=3,
                            sha256="0" * 64, email=email)
    if profile is not None:
        CategoryPairing.objects.create(profile=profile, crm_category=hotline,
                                       exchange_category="Hotline")
        MailFolder.objects.create(profile=profile, folder_id="inbox", folder_path="Inbox")
    return person
