from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.test import TransactionTestCase

from crm.models import ClassificationNode, Company, CrmUser, Event, Person, PersonCompany
from crm.tracking import Change, changes_since
from profiles.models import Organization
from tests.base import BaseTestCase

START = datetime(2026, 11, 24, 9, tzinfo=UTC)


def _changes(organization: Organization, kind: str, since: int = 0) -> list[tuple[int, bool]]:
    return [(c.object_id, c.deleted) for c in changes_since(organization.id, kind, since)]


class ChangeTrackingTestCase(BaseTestCase):
    def _person(self, **fields: object) -> Person:
        return Person.objects.create(organization=self.acme, **fields)

    def _latest(self, kind: str = "person") -> int:
        return changes_since(self.acme.id, kind, 0).last().revision

    def _assert_changes_only(self, person: Person, change: Callable[[], object]) -> None:
        before = self._latest()
        change()
        self.assertEqual(_changes(self.acme, "person", before), [(person.id, False)])

    def test_creates_updates_and_deletions_come_back_in_revision_order(self) -> None:
        jana = self._person(first_name="Jana", email1="jana@acme.example")
        petr = self._person(first_name="Petr")
        after_creates = self._latest()
        jana.job_title = "Ředitelka"
        jana.save()
        petr_id = petr.id
        petr.delete()

        self.assertEqual(_changes(self.acme, "person"), [(jana.id, False), (petr_id, True)])
        self.assertEqual(_changes(self.acme, "person", after_creates),
                         [(jana.id, False), (petr_id, True)])
        self.assertEqual(_changes(self.acme, "person", self._latest()), [])

    def test_a_deleted_person_leaves_a_tombstone_with_a_newer_revision(self) -> None:
        person = self._person(first_name="Jana")
        created_at = person.revision
        person_id = person.id
        person.delete()
        tombstone = Change.objects.get(kind="person", object_id=person_id)
        self.assertTrue(tombstone.deleted)
        self.assertGreater(tombstone.revision, created_at)

    def test_every_save_advances_the_revision(self) -> None:
        person = self._person(first_name="Jana")
        first = person.revision
        person.save(update_fields=["first_name"])
        person.refresh_from_db()
        self.assertGreater(person.revision, first)
        self.assertEqual(Change.objects.get(kind="person", object_id=person.id).revision,
                         person.revision)

    def test_queryset_update_is_tracked_with_one_revision_for_the_batch(self) -> None:
        people = [self._person(first_name=name) for name in ("A", "B", "C")]
        before = self._latest()
        Person.objects.filter(first_name__in=["A", "B"]).update(department="Sales")
        changed = changes_since(self.acme.id, "person", before)
        self.assertEqual({c.object_id for c in changed}, {people[0].id, people[1].id})
        self.assertEqual(len({c.revision for c in changed}), 1)
        self.assertEqual(Person.objects.get(pk=people[0].id).revision, changed[0].revision)

    def test_bulk_create_and_bulk_update_are_tracked(self) -> None:
        created = Person.objects.bulk_create(
            [Person(organization=self.acme, first_name=f"P{i}") for i in range(5)]
        )
        self.assertEqual(len(_changes(self.acme, "person")), 5)
        before = self._latest()
        for person in created[:2]:
            person.last_name = "Nová"
        Person.objects.bulk_update(created[:2], ["last_name"])
        self.assertEqual({pk for pk, _ in _changes(self.acme, "person", before)},
                         {created[0].id, created[1].id})

    def test_bulk_create_that_could_skip_rows_is_refused_rather_than_untracked(self) -> None:
        with self.assertRaisesMessage(NotImplementedError, "bypass change tracking"):
            Person.objects.bulk_create([Person(organization=self.acme)], ignore_conflicts=True)

    def test_queryset_delete_leaves_tombstones(self) -> None:
        ids = [self._person(first_name=n).id for n in ("A", "B")]
        Person.objects.filter(pk__in=ids).delete()
        self.assertEqual(sorted(_changes(self.acme, "person")), [(ids[0], True), (ids[1], True)])

    def test_linking_a_company_changes_the_person_from_either_side(self) -> None:
        person = self._person(first_name="Jana")
        acme = Company.objects.create(organization=self.acme, name="ACME s.r.o.")
        other = Company.objects.create(organization=self.acme, name="Other")
        for change in (
            lambda: person.companies.add(acme),
            lambda: other.persons.add(person),
            lambda: person.companies.remove(acme),
            lambda: other.persons.clear(),
            lambda: person.companies.set([acme, other]),
            lambda: person.companies.clear(),
        ):
            self._assert_changes_only(person, change)

    def test_renaming_a_company_changes_its_persons(self) -> None:
        person = self._person(first_name="Jana")
        company = Company.objects.create(organization=self.acme, name="ACME")
        person.companies.add(company)
        before = self._latest()
        company.name = "ACME a.s."
        company.save()
        self.assertEqual(_changes(self.acme, "person", before), [(person.id, False)])
        before = self._latest()
        company.phone = "+420 123"
        company.save()
        self.assertEqual(_changes(self.acme, "person", before), [])

    def test_deleting_a_company_changes_its_persons_and_leaves_a_tombstone(self) -> None:
        person = self._person(first_name="Jana")
        company = Company.objects.create(organization=self.acme, name="ACME")
        person.companies.add(company)
        company_id = company.id
        before = self._latest()
        company.delete()
        self.assertEqual(_changes(self.acme, "person", before), [(person.id, False)])
        self.assertIn((company_id, True), _changes(self.acme, "company"))

    def test_classification_changes_change_the_person_from_either_side(self) -> None:
        person = self._person(first_name="Jana")
        node = ClassificationNode.objects.create(organization=self.acme, name="Zákazníci")
        other = ClassificationNode.objects.create(organization=self.acme, name="Dodavatelé")
        for change in (
            lambda: node.persons.add(person),
            lambda: person.classification_nodes.add(other),
            lambda: node.persons.remove(person),
            lambda: person.classification_nodes.clear(),
            lambda: person.classification_nodes.set([node]),
            lambda: node.persons.clear(),
            lambda: person.classification_nodes.add(other),
            lambda: other.delete(),
        ):
            self._assert_changes_only(person, change)

    def test_event_links_change_the_event(self) -> None:
        owner = CrmUser.objects.create(organization=self.acme, name="Owner", login="owner")
        event = Event.objects.create(organization=self.acme, owner=owner, subject="Call",
                                     start=START, end=START + timedelta(hours=1))
        person = self._person(first_name="Jana")
        before = self._latest("event")
        event.persons.add(person)
        self.assertEqual(_changes(self.acme, "event", before), [(event.id, False)])
        for change in (
            lambda: event.persons.remove(person),
            lambda: person.events.add(event),
            lambda: person.events.clear(),
            lambda: event.persons.set([person]),
            # the link goes with the person: the event's attendees changed
            lambda: person.delete(),
        ):
            before = self._latest("event")
            change()
            self.assertEqual(_changes(self.acme, "event", before), [(event.id, False)])

    def test_organizations_count_their_revisions_separately(self) -> None:
        Person.objects.create(organization=self.acme, first_name="A")
        Person.objects.create(organization=self.acme, first_name="B")
        globex_person = Person.objects.create(organization=self.globex, first_name="G")
        self.assertEqual(globex_person.revision, 1)
        self.assertEqual(_changes(self.globex, "person"), [(globex_person.id, False)])
        self.assertEqual(len(_changes(self.acme, "person")), 2)

    def test_deleting_an_organization_takes_its_journal_with_it(self) -> None:
        Person.objects.create(organization=self.globex, first_name="G")
        Company.objects.create(organization=self.globex, name="Globex")
        self.globex.delete()
        self.assertFalse(Change.objects.filter(organization_id=self.globex.id).exists())
        self.assertFalse(Person.objects.filter(organization_id=self.globex.id).exists())

    def test_a_rolled_back_write_leaves_no_change_behind(self) -> None:
        before = Change.objects.count()
        try:
            with transaction.atomic():
                self._person(first_name="Ghost")
                raise RuntimeError("crash after the write")
        except RuntimeError:
            pass
        self.assertEqual(Change.objects.count(), before)
        self.assertFalse(Person.objects.filter(first_name="Ghost").exists())


class SeriesTrackingTestCase(BaseTestCase):
    def test_changing_an_exception_changes_its_series(self) -> None:
        owner = CrmUser.objects.create(organization=self.acme, name="Owner", login="o")
        master = Event.objects.create(organization=self.acme, owner=owner, subject="Weekly",
                                      start=START, end=START + timedelta(hours=1),
                                      recurrence={"pattern": {"type": "weekly"}})
        before = changes_since(self.acme.id, "event", 0).last().revision
        exception = Event.objects.create(organization=self.acme, owner=owner, subject="Moved",
                                         start=START, end=START + timedelta(hours=1),
                                         recurrence_master=master, original_start=START)
        changed = {c.object_id for c in changes_since(self.acme.id, "event", before)}
        assert changed == {master.pk, exception.pk}
        before = changes_since(self.acme.id, "event", 0).last().revision
        exception_id = exception.pk
        exception.delete()
        changed = {(c.object_id, c.deleted) for c in changes_since(self.acme.id, "event",
                                                                   before)}
        assert changed == {(master.pk, False), (exception_id, True)}
        master.delete()   # exceptions go with it; no resurrected journal row
        assert all(c.deleted for c in changes_since(self.acme.id, "event", 0))


class LinkOutsideTransactionTestCase(TransactionTestCase):
    def test_a_company_link_saved_with_no_transaction_open_is_tracked(self) -> None:
        acme = Organization.objects.create(name="Acme")
        person = Person.objects.create(organization=acme, first_name="Jana")
        company = Company.objects.create(organization=acme, name="ACME")
        before = changes_since(acme.id, "person", 0).last().revision
        PersonCompany.objects.create(person=person, company=company)
        assert [c.object_id for c in changes_since(acme.id, "person", before)] == [person.pk]
