"""The built-in CRM backend's e-mail filing (engine/crmstore/builtin_mail.py), as the e-mail
import calls it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import TestCase

from crm.models import Company, CrmUser, Document, DocumentCategory, Email, Person, PersonCompany
from engine.crmstore.base import EmailMatch, SavedDocument
from engine.crmstore.builtin import BuiltinCrm
from engine.records import Address, MessageRecord
from profiles.models import Organization

SENT = dt.datetime(2026, 11, 3, 9, 30, tzinfo=dt.UTC)


def message(subject: str = "Nabídka", message_id: str = "<a1@stavby.cz>",
            sender: str = "petr@stavby.cz") -> MessageRecord:
    return MessageRecord(message_id=message_id, subject=subject,
                         sender=Address(sender, "Petr Svoboda"),
                         to=(Address("alice@acme.cz"),), sent=SENT, received=SENT,
                         body_text="Dobrý den")


def document(name: str, path: str = "2026/11/nabidka.pdf") -> SavedDocument:
    return SavedDocument(root="/srv/share", path=path, name=name, size=5, sha256="ab" * 32,
                         category="Příloha")


class BuiltinMailTestCase(TestCase):
    def setUp(self) -> None:
        self.acme = Organization.objects.create(name="Acme")
        self.crm = BuiltinCrm(self.acme.pk)
        self.alice = str(CrmUser.objects.create(organization=self.acme, name="Alice",
                                                login="alice").pk)
        self.bob = str(CrmUser.objects.create(organization=self.acme, name="Bob",
                                              login="bob").pk)

    def test_a_message_is_filed_once_and_found_by_its_identity(self) -> None:
        assert self.crm.find_email(message(), "item-1", self.alice) == EmailMatch()
        filing = self.crm.file_email(message(), "item-1", EmailMatch(), self.alice, [], [])
        assert filing.created
        # Another mailbox's copy: another item, the same Message-ID and fingerprint.
        assert self.crm.find_email(message(), "item-2", self.alice) == \
            EmailMatch(filing.key, mine=True)
        assert self.crm.find_email(message(), "item-2", self.bob) == EmailMatch(filing.key)
        again = self.crm.file_email(message(), "item-2", EmailMatch(filing.key), self.bob,
                                    [], [])
        assert (again.key, again.created) == (filing.key, False)
        email = Email.objects.get()
        assert {str(u) for u in email.users.values_list("pk", flat=True)} == {self.alice,
                                                                               self.bob}
        assert self.crm.filed_emails(self.bob, ["item-1", "item-9"])["item-1"].subject == \
            "Nabídka"
        assert self.crm.filed_emails(self.bob, ["item-9"]) == {}

    def test_a_different_message_reusing_a_message_id_collides_and_is_its_own(self) -> None:
        first = self.crm.file_email(message(), "item-1", EmailMatch(), self.alice, [], [])
        other = message(subject="Something else")
        match = self.crm.find_email(other, "item-2", self.alice)
        assert match == EmailMatch(collided=first.key)
        second = self.crm.file_email(other, "item-2", match, self.alice, [], [])
        assert second.created and second.key != first.key

    def test_a_message_without_a_message_id_is_found_by_its_mailbox_item(self) -> None:
        bare = message(message_id="")
        filing = self.crm.file_email(bare, "item-1", EmailMatch(), self.alice, [], [])
        assert self.crm.find_email(bare, "item-1", self.alice).key == filing.key
        assert self.crm.find_email(bare, "item-2", self.alice) == EmailMatch()

    def test_filing_what_another_run_filed_meanwhile_takes_that_e_mail(self) -> None:
        # Both runs looked before either filed: the second one's create meets the first's.
        first = self.crm.file_email(message(), "item-1", EmailMatch(), self.alice, [], [])
        second = self.crm.file_email(message(), "item-2", EmailMatch(), self.bob, [], [])
        assert (second.key, second.created) == (first.key, False)
        assert Email.objects.count() == 1

    def test_the_e_mail_is_linked_to_the_persons_and_their_companies(self) -> None:
        petr = Person.objects.create(organization=self.acme, first_name="Petr",
                                     last_name="Svoboda", email1="petr@stavby.cz")
        stavby = Company.find_or_create_by_name(self.acme.pk, "Stavby s.r.o.")
        PersonCompany.objects.create(person=petr, company=stavby)
        elsewhere = Person.objects.create(
            organization=Organization.objects.create(name="Globex"), first_name="Cizí")
        filing = self.crm.file_email(message(), "item-1", EmailMatch(), self.alice,
                                     [str(petr.pk), str(elsewhere.pk)], [])
        email = Email.objects.get(pk=int(filing.key))
        assert list(email.persons.all()) == [petr]   # never another organization's person
        assert list(email.companies.all()) == [stavby]
        assert self.crm.person_names([str(petr.pk), str(elsewhere.pk)]) == {
            str(petr.pk): "Petr Svoboda"}

    def test_documents_are_recorded_once_per_name_in_their_category(self) -> None:
        filing = self.crm.file_email(message(), "item-1", EmailMatch(), self.alice, [],
                                     [document("nabidka.pdf")])
        self.crm.file_email(message(), "item-2", EmailMatch(filing.key), self.bob, [],
                            [document("nabidka.pdf", "2026/11/other.pdf"),
                             document("cenik.xlsx", "2026/11/cenik.xlsx")])
        assert sorted(self.crm.email_documents(filing.key)) == ["cenik.xlsx", "nabidka.pdf"]
        saved = Document.objects.get(original_name="nabidka.pdf")
        assert (saved.path, saved.category, saved.organization_id) == (
            "2026/11/nabidka.pdf", DocumentCategory.objects.get(name="Příloha"), self.acme.pk)

    def test_the_shared_transaction_carries_the_filing(self) -> None:
        # The import writes its history line in the same block: both commit, or neither.
        with pytest.raises(RuntimeError), self.crm.shared_transaction():
            self.crm.file_email(message(), "item-1", EmailMatch(), self.alice, [], [])
            raise RuntimeError("the history line failed")
        assert not Email.objects.exists()
