"""The CRM backend over the built-in store."""

from __future__ import annotations

from django.test import TestCase

from crm.models import ClassificationNode, Company, Person
from engine.crmstore.base import CrmUpdate
from engine.crmstore.builtin import BuiltinCrm
from engine.records import ContactRecord, Kind, PostalAddress
from profiles.models import Organization


class BuiltinCrmTestCase(TestCase):
    def setUp(self) -> None:
        self.acme = Organization.objects.create(name="Acme")
        self.crm = BuiltinCrm(self.acme.pk)

    def test_changes_since_a_revision_include_deletions(self) -> None:
        start = self.crm.current_cursor()
        kept = Person.objects.create(organization=self.acme, first_name="Kept")
        gone = Person.objects.create(organization=self.acme, first_name="Gone")
        gone_key = str(gone.pk)
        gone.delete()
        changes = {c.key: c.deleted for c in self.crm.changes_since(Kind.CONTACTS, start)}
        assert changes == {str(kept.pk): False, gone_key: True}
        assert list(self.crm.changes_since(Kind.CONTACTS, self.crm.current_cursor())) == []

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

    def test_look_ups_by_address_and_origin_find_this_organizations_persons_only(self) -> None:
        other = Organization.objects.create(name="Other")
        Person.objects.create(organization=other, email1="eva@acme.cz", origin_item_id="AAMk-2")
        ours = Person.objects.create(organization=self.acme, email1="eva@acme.cz",
                                     origin_item_id="AAMk-2")
        assert self.crm.find_by_email(["eva@acme.cz"]) == {"eva@acme.cz": [str(ours.pk)]}
        assert self.crm.find_by_origin(Kind.CONTACTS, ["AAMk-2"]) == {"AAMk-2": str(ours.pk)}
        assert BuiltinCrm(other.pk).find_by_origin(Kind.CONTACTS, ["AAMk-3"]) == {}

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

    def test_an_update_naming_an_older_version_is_refused_and_writes_nothing(self) -> None:
        # A user's edit made after the sync read the person is neither overwritten nor hidden
        # behind the sync's write: the write is refused as a conflict, for the next run.
        eva = self.crm.create(Kind.CONTACTS, ContactRecord(first_name="Eva"), "")
        jan = self.crm.create(Kind.CONTACTS, ContactRecord(first_name="Jan"), "")
        Person.objects.filter(pk=int(eva.key)).update(department="Nákup")   # the user's edit
        fields = frozenset({"department"})
        single = self.crm.update(Kind.CONTACTS, eva.key, ContactRecord(department="Prodej"),
                                 fields, version=eva.version)
        many = self.crm.update_many(Kind.CONTACTS, [
            CrmUpdate(eva.key, ContactRecord(department="Prodej"), fields, eva.version),
            CrmUpdate(jan.key, ContactRecord(department="Servis"), fields, jan.version),
            CrmUpdate(jan.key, ContactRecord(job_title="Jednatel"), frozenset({"job_title"}))])
        assert (single.ok, single.conflict) == (False, True)
        assert [(r.ok, r.conflict) for r in many] == [(False, True), (True, False),
                                                      (True, False)]
        assert "since it was read" in many[0].error
        assert Person.objects.get(pk=int(eva.key)).department == "Nákup"
        assert Person.objects.get(pk=int(jan.key)).department == "Servis"
        now = self.crm.fetch(Kind.CONTACTS, [jan.key])[jan.key].version
        written = self.crm.update(Kind.CONTACTS, jan.key, ContactRecord(first_name="Honza"),
                                  frozenset({"first_name"}), version=now)
        assert written.ok and written.version != now

    def test_stamps_name_this_organizations_records_only(self) -> None:
        stamp = self.crm.stamp(Kind.CONTACTS, "42")
        assert self.crm.key_from_stamp(Kind.CONTACTS, stamp) == "42"
        assert BuiltinCrm(self.acme.pk + 1).key_from_stamp(Kind.CONTACTS, stamp) is None

    def test_many_updates_write_only_their_fields_and_report_each_person(self) -> None:
        eva = self.crm.create(Kind.CONTACTS, ContactRecord(
            first_name="Eva", last_name="Malá", job_title="Buyer", company="Alfa s.r.o."), "")
        jan = self.crm.create(Kind.CONTACTS, ContactRecord(
            first_name="Jan", last_name="Velký", phone_mobile="+420 601"), "")
        gone = Person.objects.create(organization=self.acme, first_name="Gone")
        gone_key = str(gone.pk)
        gone.delete()
        start = self.crm.current_cursor()
        results = self.crm.update_many(Kind.CONTACTS, [CrmUpdate(*u) for u in [
            (eva.key, ContactRecord(first_name="IGNORED", job_title="Head of purchasing",
                                    company="Beta a.s."), frozenset({"job_title", "company"})),
            (gone_key, ContactRecord(first_name="X"), frozenset({"first_name"})),
            (jan.key, ContactRecord(phone_mobile="+420 602", department="d" * 300,
                                    business_address=PostalAddress("Husova 1", "Brno", "",
                                                                   "602 00", "CZ")),
             frozenset({"phone_mobile", "department", "business_address"})),
            (jan.key, ContactRecord(last_name="Veliký"), frozenset({"last_name"})),
        ]])
        assert [r.ok for r in results] == [True, False, True, True]
        assert "no longer exists" in results[1].error
        assert any("characters long" in w for w in results[2].warnings)
        fetched = self.crm.fetch(Kind.CONTACTS, [eva.key, jan.key])
        eva_now, jan_now = fetched[eva.key], fetched[jan.key]
        assert (eva_now.record.first_name, eva_now.record.job_title, eva_now.record.company) \
            == ("Eva", "Head of purchasing", "Beta a.s.")
        assert (jan_now.record.first_name, jan_now.record.last_name,
                jan_now.record.phone_mobile, jan_now.record.business_address.city) \
            == ("Jan", "Veliký", "+420 602", "Brno")
        assert jan_now.record.department == "d" * 200   # cut to the column, as update() does
        # Each result's version is the person's revision now, and the sync finds the changes.
        assert results[0].version == eva_now.version
        assert results[3].version == jan_now.version
        changed = {c.key for c in self.crm.changes_since(Kind.CONTACTS, start)}
        assert changed == {eva.key, jan.key}

    def test_many_event_updates_write_their_fields_and_attendees_and_report_each(self) -> None:
        import datetime as dt

        from crm.models import CrmUser, Event
        from engine.crmstore.builtin_events import EventOptions
        from engine.records import Attendee, EventRecord

        owner = CrmUser.objects.create(organization=self.acme, name="Alice", login="alice")
        crm = BuiltinCrm(self.acme.pk, event_options=EventOptions(
            owner_id=owner.pk, link_attendees=True, link_attendee_companies=True))
        eva = crm.create(Kind.CONTACTS, ContactRecord(first_name="Eva", email1="eva@alfa.cz",
                                                      company="Alfa s.r.o."), "")
        at = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
        one = crm.create(Kind.CALENDAR, EventRecord(subject="One", start=at,
                                                    end=at + dt.timedelta(hours=1)), "")
        two = crm.create(Kind.CALENDAR, EventRecord(subject="Two", start=at,
                                                    end=at + dt.timedelta(hours=1)), "")
        gone = crm.create(Kind.CALENDAR, EventRecord(subject="Gone", start=at, end=at), "")
        Event.objects.filter(pk=int(gone.key)).delete()
        start = crm.current_cursor()
        results = crm.update_many(Kind.CALENDAR, [CrmUpdate(*u) for u in [
            (one.key, EventRecord(subject="IGNORED", location="Room 3", start=at, end=at,
                                  attendees=(Attendee("EVA@alfa.cz"),)),
             frozenset({"location", "attendees"})),
            (two.key, EventRecord(subject="Two, moved", start=at + dt.timedelta(days=1),
                                  end=at + dt.timedelta(days=1, hours=2)),
             frozenset({"subject", "start", "end"})),
            (gone.key, EventRecord(subject="X", start=at, end=at), frozenset({"subject"})),
            (two.key, EventRecord(start=at, end=at - dt.timedelta(hours=1)),
             frozenset({"end"})),
        ]])
        assert [r.ok for r in results] == [True, True, False, False]
        assert "no longer exists" in results[2].error and "no valid" in results[3].error
        first, second = Event.objects.get(pk=int(one.key)), Event.objects.get(pk=int(two.key))
        assert (first.subject, first.location) == ("One", "Room 3")
        assert [p.pk for p in first.persons.all()] == [int(eva.key)]
        assert [c.name for c in first.companies.all()] == ["Alfa s.r.o."]
        assert (second.subject, second.start) == ("Two, moved", at + dt.timedelta(days=1))
        assert (results[0].version, results[1].version) == (str(first.revision),
                                                            str(second.revision))
        changed = {c.key for c in crm.changes_since(Kind.CALENDAR, start)}
        assert {one.key, two.key} <= changed
