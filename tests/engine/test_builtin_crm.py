"""The CRM backend over the built-in store."""

from __future__ import annotations

from django.test import TestCase

from crm.models import ClassificationNode, Company, Person
from engine.crmstore.builtin import BuiltinCrm
from engine.records import ContactRecord, Kind, PostalAddress
from profiles.models import Organization


class BuiltinCrmTestCase(TestCase):
    def setUp(self) -> None:
        self.acme = Organization.objects.create(name="Acme")
        self.crm = BuiltinCrm(self.acme.pk)

    def test_changes_since_a_revision_include_deletions(self) -> None:
        start = self.crm.current_revision()
        kept = Person.objects.create(organization=self.acme, first_name="Kept")
        gone = Person.objects.create(organization=self.acme, first_name="Gone")
        gone_key = str(gone.pk)
        gone.delete()
        changes = {c.key: c.deleted for c in self.crm.changes_since(Kind.CONTACTS, start)}
        assert changes == {str(kept.pk): False, gone_key: True}
        assert list(self.crm.changes_since(Kind.CONTACTS, self.crm.current_revision())) == []

    def test_a_record_round_trips_with_its_company(self) -> None:
        record = ContactRecord(title="Ing.", first_name="Petr", last_name="Svoboda",
                               suffix="Ph.D.", company="Stavby Brno s.r.o.", email1="p@s.cz",
                               business_address=PostalAddress("Hlinky 12", "Brno", "",
                                                              "603 00", "CZ"),
                               phone_mobile="+420 603", note="VIP")
        written = self.crm.create(Kind.CONTACTS, record, origin="AAMk-1")
        fetched = self.crm.fetch(Kind.CONTACTS, [written.key])[written.key]
        assert fetched.record.company == "Stavby Brno s.r.o."
        assert fetched.record.business_address.city == "Brno" and fetched.record.title == "Ing."
        assert self.crm.find_by_origin(Kind.CONTACTS, ["AAMk-1"]) == {"AAMk-1": written.key}

    def test_companies_match_case_and_space_insensitively(self) -> None:
        first = self.crm.find_or_create_company("ACME s.r.o.")
        assert self.crm.find_or_create_company("Acme  S.R.O.") == first
        assert Company.objects.count() == 1

    def test_persons_are_found_by_any_of_their_addresses_ignoring_case(self) -> None:
        person = Person.objects.create(organization=self.acme, email2="Eva@Acme.cz")
        assert self.crm.find_by_email(["eva@acme.cz", "x@y.cz"]) == {
            "eva@acme.cz": [str(person.pk)], "x@y.cz": []}

    def test_the_branch_includes_sub_nodes(self) -> None:
        root = ClassificationNode.objects.create(organization=self.acme, name="Zákazníci")
        child = ClassificationNode.objects.create(organization=self.acme, name="Morava",
                                                  parent=root)
        inside = Person.objects.create(organization=self.acme, first_name="In")
        inside.classification_nodes.add(child)
        Person.objects.create(organization=self.acme, first_name="Out")
        assert list(self.crm.persons_in_branch(str(root.pk))) == [str(inside.pk)]

    def test_too_long_values_are_cut_with_a_warning(self) -> None:
        written = self.crm.create(Kind.CONTACTS, ContactRecord(job_title="x" * 300), "o")
        assert written.ok and "job title was 300 characters long" in written.warnings[0]

    def test_updates_write_only_the_given_fields(self) -> None:
        person = Person.objects.create(organization=self.acme, first_name="Eva", note="keep")
        self.crm.update(Kind.CONTACTS, str(person.pk), ContactRecord(first_name="Eve"),
                        frozenset({"first_name"}))
        person.refresh_from_db()
        assert (person.first_name, person.note) == ("Eve", "keep")

    def test_stamps_name_this_organizations_records_only(self) -> None:
        stamp = self.crm.stamp(Kind.CONTACTS, "42")
        assert self.crm.key_from_stamp(Kind.CONTACTS, stamp) == "42"
        assert BuiltinCrm(self.acme.pk + 1).key_from_stamp(Kind.CONTACTS, stamp) is None
