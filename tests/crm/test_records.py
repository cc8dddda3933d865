from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from crm.models import ClassificationNode, Company, CrmUser, Email, Event, Person
from tests.base import BaseTestCase

START = datetime(2026, 3, 29, 8, tzinfo=UTC)


class CompanyTestCase(BaseTestCase):
    def test_names_differing_only_in_case_and_spaces_are_one_company(self) -> None:
        first = Company.find_or_create_by_name(self.acme.id, "ACME s.r.o.")
        again = Company.find_or_create_by_name(self.acme.id, "  Acme   S.R.O. ")
        self.assertEqual(first, again)
        self.assertEqual(Company.objects.filter(organization=self.acme).count(), 1)
        self.assertEqual(first.name, "ACME s.r.o.")

    def test_each_organization_has_its_own_companies(self) -> None:
        ours = Company.find_or_create_by_name(self.acme.id, "ACME s.r.o.")
        theirs = Company.find_or_create_by_name(self.globex.id, "ACME s.r.o.")
        self.assertNotEqual(ours, theirs)

    def test_a_second_company_of_the_same_name_is_refused(self) -> None:
        Company.objects.create(organization=self.acme, name="ACME s.r.o.")
        duplicate = Company(organization=self.acme, name="acme  s.r.o.")
        with self.assertRaises(ValidationError):
            duplicate.full_clean()
        with self.assertRaises(IntegrityError), transaction.atomic():
            duplicate.save()


class PersonTestCase(BaseTestCase):
    def test_persons_are_found_by_any_of_their_addresses_ignoring_case(self) -> None:
        jana = Person.objects.create(organization=self.acme, first_name="Jana",
                                     email1="jana@acme.example", email3="J.Novakova@Home.cz")
        found = Person.objects.filter(organization=self.acme)
        self.assertEqual(list(found.with_email("JANA@ACME.EXAMPLE")), [jana])
        self.assertEqual(list(found.with_email("j.novakova@home.cz ")), [jana])
        self.assertEqual(list(found.with_email("")), [])
        self.assertEqual(list(found.with_email("nobody@acme.example")), [])

    def test_a_branch_holds_the_persons_of_its_sub_nodes(self) -> None:
        customers = ClassificationNode.objects.create(organization=self.acme, name="Zákazníci")
        prague = ClassificationNode.objects.create(organization=self.acme, name="Praha",
                                                   parent=customers)
        centre = ClassificationNode.objects.create(organization=self.acme, name="Centrum",
                                                   parent=prague)
        suppliers = ClassificationNode.objects.create(organization=self.acme, name="Dodavatelé")
        deep = Person.objects.create(organization=self.acme, first_name="Deep")
        deep.classification_nodes.add(centre, customers)
        other = Person.objects.create(organization=self.acme, first_name="Other")
        other.classification_nodes.add(suppliers)

        self.assertEqual(list(Person.objects.in_branch(customers)), [deep])
        self.assertEqual(list(Person.objects.in_branch(prague)), [deep])
        self.assertEqual(list(Person.objects.in_branch(suppliers)), [other])
        self.assertEqual(str(centre), "Zákazníci / Praha / Centrum")

    def test_a_node_cannot_be_moved_below_itself(self) -> None:
        root = ClassificationNode.objects.create(organization=self.acme, name="Root")
        child = ClassificationNode.objects.create(organization=self.acme, name="Child",
                                                  parent=root)
        root.parent = child
        with self.assertRaisesMessage(ValidationError, "below itself"):
            root.full_clean()

    def test_a_person_without_a_name_is_shown_by_address(self) -> None:
        person = Person.objects.create(organization=self.acme, email2="info@acme.example")
        self.assertEqual(person.display_name, "info@acme.example")


class EventAndEmailTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.owner = CrmUser.objects.create(organization=self.acme, name="Owner", login="o")

    def test_an_event_may_not_end_before_it_starts(self) -> None:
        event = Event(organization=self.acme, owner=self.owner, subject="Backwards",
                      start=START, end=START - timedelta(minutes=1))
        with self.assertRaisesMessage(ValidationError, "ends before it starts"):
            event.full_clean()

    def test_one_meeting_uid_is_one_event_per_organization(self) -> None:
        Event.objects.create(organization=self.acme, owner=self.owner, subject="Meeting",
                             start=START, end=START, uid="040000008200E00074C5B7101A82E008")
        with self.assertRaises(IntegrityError), transaction.atomic():
            Event.objects.create(organization=self.acme, owner=self.owner, subject="Copy",
                                 start=START, end=START, uid="040000008200E00074C5B7101A82E008")
        # events without a UID are not meetings: any number of them
        for subject in ("A", "B"):
            Event.objects.create(organization=self.acme, owner=self.owner, subject=subject,
                                 start=START, end=START)

    def test_one_message_id_is_one_email_per_organization(self) -> None:
        Email.objects.create(organization=self.acme, message_id="<abc@mail.example>")
        Email.objects.create(organization=self.globex, message_id="<abc@mail.example>")
        with self.assertRaises(IntegrityError), transaction.atomic():
            Email.objects.create(organization=self.acme, message_id="<abc@mail.example>")
        Email.objects.create(organization=self.acme, message_id=None, origin_item_id="AAMk1")
        Email.objects.create(organization=self.acme, message_id=None, origin_item_id="AAMk2")
