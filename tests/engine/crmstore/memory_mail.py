"""E-mails filed in the in-memory CRM, as the built-in store files them (builtin_mail.py): one
e-mail per message, found by its Message-ID and fingerprint (or, without a Message-ID, by the
mailbox item it came from), linked to one more CRM user by each import that meets it."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Sequence

from engine.crmstore.base import EmailMatch, FiledEmail, Filing, SavedDocument
from engine.records import ContactRecord, Kind, MessageRecord
from tests.engine.crmstore.memory_store import FiledMail, OnStore, display_name, new_key


def fingerprint(message: MessageRecord) -> tuple[str, str, str]:
    """What tells a message apart besides its Message-ID, which collides in real mail: its
    sender, when it was sent (whole UTC seconds) and its subject, normalized so that every
    mailbox's copy gives the same."""
    sender = message.sender.email.strip().casefold() if message.sender else ""
    sent = message.sent.astimezone(dt.UTC).replace(microsecond=0).isoformat() \
        if message.sent else ""
    return sender, sent, " ".join(unicodedata.normalize("NFC", message.subject).split())


class MemoryMail(OnStore):
    """The e-mail import's part of MemoryCrm, for the backend's organization."""

    def filed_emails(self, user: str, origins: Sequence[str]) -> dict[str, FiledEmail]:
        wanted = set(origins)
        return {email.origin: FiledEmail(key, email.subject)
                for key, email in self._store.emails.items()
                if email.origin in wanted and user in email.users}

    def find_email(self, message: MessageRecord, origin: str, user: str) -> EmailMatch:
        emails = self._store.emails
        if not message.message_id:
            found = next((key for key, email in emails.items()
                          if not email.message_id and email.origin == origin), "")
            return EmailMatch(found, mine=bool(found) and user in emails[found].users)
        same_id = [key for key, email in emails.items()
                   if email.message_id == message.message_id]
        found = next((key for key in same_id
                      if emails[key].fingerprint == fingerprint(message)), "")
        if not found:
            # Another message reusing the Message-ID: named, and filed apart from it.
            return EmailMatch(collided=same_id[0] if same_id else "")
        return EmailMatch(found, mine=user in emails[found].users)

    def file_email(self, message: MessageRecord, origin: str, match: EmailMatch, user: str,
                   persons: Sequence[str], documents: Sequence[SavedDocument]) -> Filing:
        store = self._store
        key, created = match.key if match.key in store.emails else "", False
        if not key and message.message_id:
            # Filed by another import since `match` was looked up: that e-mail is this one.
            key = next((k for k, email in store.emails.items()
                        if email.message_id == message.message_id
                        and email.fingerprint == fingerprint(message)), "")
        if not key:
            key, created = new_key("email"), True
            store.emails[key] = FiledMail(message.message_id, fingerprint(message), origin,
                                          message.subject)
        email = store.emails[key]
        email.users.add(user)
        people = store.rows[Kind.CONTACTS]
        for person in (p for p in persons if p in people):   # never another organization's
            email.persons.add(person)
            record = people[person].record
            company = store.company_key(record.company) \
                if isinstance(record, ContactRecord) else ""
            if company:
                email.companies.add(company)
        for document in documents:
            # Another import may have recorded it already, from its copy of the message.
            email.documents.setdefault(document.name, document)
        return Filing(key, created)

    def email_documents(self, key: str) -> list[str]:
        email = self._store.emails.get(key)
        return list(email.documents) if email is not None else []

    def person_names(self, keys: Sequence[str]) -> dict[str, str]:
        people = self._store.rows[Kind.CONTACTS]
        return {key: display_name(key, record) for key in keys if key in people
                and isinstance(record := people[key].record, ContactRecord)}
