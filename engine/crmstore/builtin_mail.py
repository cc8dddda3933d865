"""E-mails filed in the built-in store: found by their identity, created or linked to one more
CRM user, with their persons, companies and documents (the e-mail import's side of the CRM)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction

from crm.models import Document, DocumentCategory, Email, Person, PersonCompany, email_fingerprint
from engine.crmstore.base import EmailMatch, FiledEmail, Filing, SavedDocument
from engine.records import MessageRecord


class BuiltinMail:
    """The e-mail import's part of the built-in backend (`BuiltinCrm` takes it in): each call
    is one of the functions below, for the backend's organization."""

    organization_id: int

    def filed_emails(self, user: str, origins: Sequence[str]) -> dict[str, FiledEmail]:
        return filed_emails(self.organization_id, user, origins)

    def find_email(self, message: MessageRecord, origin: str, user: str) -> EmailMatch:
        return find_email(self.organization_id, message, origin, user)

    def find_emails(self, messages: Sequence[tuple[MessageRecord, str]], user: str
                    ) -> list[EmailMatch]:
        return find_emails(self.organization_id, messages, user)

    def file_email(self, message: MessageRecord, origin: str, match: EmailMatch, user: str,
                   persons: Sequence[str], documents: Sequence[SavedDocument]) -> Filing:
        return file_email(self.organization_id, message, origin, match, user, persons,
                          documents)

    def email_documents(self, key: str) -> list[str]:
        return email_documents(self.organization_id, key)

    def person_names(self, keys: Sequence[str]) -> dict[str, str]:
        return person_names(self.organization_id, keys)


def filed_emails(organization_id: int, user: str, origins: Sequence[str]
                 ) -> dict[str, FiledEmail]:
    rows = Email.objects.filter(organization_id=organization_id, users=int(user),
                                origin_item_id__in=list(origins))\
        .values_list("origin_item_id", "pk", "subject")
    return {origin: FiledEmail(str(pk), subject) for origin, pk, subject in rows}


def email_values(organization_id: int, message: MessageRecord, origin: str) -> dict[str, Any]:
    """The CRM e-mail's fields for this message (cut to the columns), its identity among
    them."""
    sender = (message.sender.email if message.sender else "")[:320]
    subject = message.subject[:998]
    return {
        "organization_id": organization_id,
        "message_id": message.message_id[:998] or None,
        "fingerprint": email_fingerprint(sender, message.sent, subject),
        "origin_item_id": origin, "subject": subject, "sender_address": sender,
        "sender_name": (message.sender.name if message.sender else "")[:255],
        "recipients": {"to": [a.email for a in message.to],
                       "cc": [a.email for a in message.cc]},
        "sent_at": message.sent, "received_at": message.received,
        "body_text": message.body_text, "body_html": message.body_html,
    }


def find_email(organization_id: int, message: MessageRecord, origin: str,
               user: str) -> EmailMatch:
    values = email_values(organization_id, message, origin)
    emails = Email.objects.filter(organization_id=organization_id)
    found: Email | None = None
    collided: Email | None = None
    if values["message_id"] is None:
        found = emails.filter(message_id__isnull=True, origin_item_id=origin).first()
    else:
        same_id = list(emails.filter(message_id=values["message_id"]).order_by("pk")
                       .only("pk", "fingerprint"))
        found = next((e for e in same_id if e.fingerprint == values["fingerprint"]), None)
        if found is None and same_id:
            collided = same_id[0]
    if found is None:
        return EmailMatch(collided=str(collided.pk) if collided else "")
    return EmailMatch(str(found.pk), mine=found.users.filter(pk=int(user)).exists())


def find_emails(organization_id: int, messages: Sequence[tuple[MessageRecord, str]],
                user: str) -> list[EmailMatch]:
    """`find_email` of many messages in three queries, whatever their number."""
    identities = [email_values(organization_id, message, origin) for message, origin in messages]
    emails = Email.objects.filter(organization_id=organization_id)
    by_message_id: dict[str, list[tuple[int, str]]] = {}
    wanted_ids = sorted({v["message_id"] for v in identities if v["message_id"] is not None})
    for start in range(0, len(wanted_ids), 500):   # bounded query parameters
        for pk, message_id, fingerprint in emails.filter(
                message_id__in=wanted_ids[start:start + 500]).order_by("pk")\
                .values_list("pk", "message_id", "fingerprint"):
            by_message_id.setdefault(message_id, []).append((pk, fingerprint))
    by_origin: dict[str, int] = {}
    origins = [v["origin_item_id"] for v in identities if v["message_id"] is None]
    for start in range(0, len(origins), 500):
        for pk, origin in emails.filter(message_id__isnull=True,
                                        origin_item_id__in=origins[start:start + 500])\
                .order_by("-received_at", "pk").values_list("pk", "origin_item_id"):
            by_origin.setdefault(origin, pk)
    found: list[int | None] = []
    collided: list[int | None] = []
    for values in identities:
        if values["message_id"] is None:
            found.append(by_origin.get(values["origin_item_id"]))
            collided.append(None)
            continue
        same_id = by_message_id.get(values["message_id"], [])
        found.append(next((pk for pk, fingerprint in same_id
                           if fingerprint == values["fingerprint"]), None))
        collided.append(same_id[0][0] if found[-1] is None and same_id else None)
    keys = [pk for pk in found if pk is not None]
    mine = set(Email.users.through.objects.filter(email_id__in=keys, crmuser_id=int(user))
               .values_list("email_id", flat=True)) if keys else set()
    return [EmailMatch(str(pk), mine=pk in mine) if pk is not None else
            EmailMatch(collided=str(other) if other is not None else "")
            for pk, other in zip(found, collided, strict=True)]


def file_email(organization_id: int, message: MessageRecord, origin: str, match: EmailMatch,
               user: str, persons: Sequence[str], documents: Sequence[SavedDocument]
               ) -> Filing:
    values = email_values(organization_id, message, origin)
    created = False
    # No savepoint of its own: the import calls it inside its transaction for the message
    # (`shared_transaction`), which a failure rolls back whole anyway; the savepoint's two
    # statements were an eighth of an e-mail's queries.
    with transaction.atomic(savepoint=False):
        email = Email.objects.filter(organization_id=organization_id,
                                     pk=int(match.key)).first() if match.key else None
        if email is None:
            try:
                with transaction.atomic():
                    email = Email.objects.create(**values)
                    created = True
            except IntegrityError:
                # Another mailbox's run filed the same message meanwhile: take it.
                email = Email.objects.get(organization_id=organization_id,
                                          message_id=values["message_id"],
                                          fingerprint=values["fingerprint"])
        email.users.add(int(user))
        person_ids = list(Person.objects.filter(organization_id=organization_id,
                                                pk__in=[int(k) for k in persons if k.isdigit()])
                          .values_list("pk", flat=True))
        if person_ids:
            email.persons.add(*person_ids)
            companies = set(PersonCompany.objects.filter(person_id__in=person_ids)
                            .values_list("company_id", flat=True))
            if companies:
                email.companies.add(*companies)
        if documents:
            _record_documents(organization_id, email, documents, new=created)
    return Filing(str(email.pk), created)


def _record_documents(organization_id: int, email: Email,
                      documents: Sequence[SavedDocument], new: bool) -> None:
    # Another mailbox's run may have filed this message and its files meanwhile (not one
    # created just now, in this transaction: it has none).
    taken = set() if new else set(email.documents.values_list("original_name", flat=True))
    categories: dict[str, DocumentCategory] = {}
    for name in {d.category for d in documents}:
        categories[name], _ = DocumentCategory.objects.get_or_create(
            organization_id=organization_id, name=name)
    Document.objects.bulk_create([
        Document(organization_id=organization_id, root=d.root, path=d.path,
                 original_name=d.name, category=categories[d.category], size=d.size,
                 sha256=d.sha256, email=email)
        for d in documents if d.name not in taken])


def email_documents(organization_id: int, key: str) -> list[str]:
    return list(Document.objects.filter(organization_id=organization_id, email_id=int(key))
                .values_list("original_name", flat=True))


def person_names(organization_id: int, keys: Sequence[str]) -> dict[str, str]:
    persons = Person.objects.filter(organization_id=organization_id,
                                    pk__in=[int(k) for k in keys if k.isdigit()])\
        .only("title", "first_name", "middle_name", "last_name", "suffix",
              "email1", "email2", "email3")
    return {str(p.pk): p.display_name for p in persons}
