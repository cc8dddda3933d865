"""The built-in CRM backend as the portal's reports read it (engine/crmstore/builtin_reports.py)
and as the listener watches it (engine/crmstore/builtin_watch.py)."""

from __future__ import annotations

import datetime as dt

from django.test import TestCase

from crm.models import Company, CrmUser, Event, Person, PersonCompany
from engine.crmstore.base import OrganizationChanges
from engine.crmstore.builtin import BuiltinCrm
from engine.records import ContactRecord, EventRecord, Kind
from profiles.models import Organization

START = dt.datetime(2026, 12, 8, 9, 0, tzinfo=dt.UTC)


class BuiltinReportsTestCase(TestCase):
    def setUp(self) -> None:
        self.acme = Organization.objects.create(name="Acme")
        self.crm = BuiltinCrm(self.acme.pk)
        self.alice = CrmUser.objects.create(organization=self.acme, name="Alice",
                                            login="alice", email="Alice@Acme.cz")

    def test_a_person_is_summarized_with_all_of_its_companies(self) -> None:
        petr = Person.objects.create(organization=self.acme, title="Ing.", first_name="Petr",
                                     last_name="Svoboda", business_city="Brno")
        for name in ("Stavby s.r.o.", "Archa a.s."):
            PersonCompany.objects.create(
                person=petr, company=Company.find_or_create_by_name(self.acme.pk, name))
        other = Person.objects.create(organization=Organization.objects.create(name="Globex"))
        found = self.crm.summaries(Kind.CONTACTS, [str(petr.pk), str(other.pk), "x"])
        assert list(found) == [str(petr.pk)]
        summary = found[str(petr.pk)]
        assert summary.title == "Ing. Petr Svoboda"
        assert isinstance(summary.record, ContactRecord)
        assert summary.record.company == "Stavby s.r.o."   # the first: the one synced
        assert summary.record.business_address.city == "Brno"
        assert sorted(summary.companies) == ["Archa a.s.", "Stavby s.r.o."]

    def test_an_event_is_summarized_with_its_owner(self) -> None:
        event = Event.objects.create(organization=self.acme, owner=self.alice,
                                     subject="Porada", start=START,
                                     end=START + dt.timedelta(hours=1), location="Brno")
        summary = self.crm.summaries(Kind.CALENDAR, [str(event.pk)])[str(event.pk)]
        assert (summary.title, summary.owner) == ("Porada", "alice@acme.cz")
        assert isinstance(summary.record, EventRecord)
        assert (summary.record.start, summary.record.location) == (START, "Brno")

    def test_contact_fields_are_labelled_as_the_crm_names_its_columns(self) -> None:
        labels = self.crm.field_labels(Kind.CONTACTS)
        assert labels["business_city"] == "Business city"
        assert labels["phone_mobile"] and labels["email1"]
        assert "company" not in labels and "organization" not in labels

    def test_a_record_links_to_its_admin_page(self) -> None:
        assert self.crm.record_url(Kind.CONTACTS, "42") == "/admin/crm/person/42/change/"
        assert self.crm.record_url(Kind.CALENDAR, "43") == "/admin/crm/event/43/change/"
        assert self.crm.record_url(Kind.MAIL, "44") == "/admin/crm/email/44/change/"
        assert self.crm.record_url(Kind.CONTACTS, "AAMk-1") == ""


class BuiltinWatchTestCase(TestCase):
    def setUp(self) -> None:
        self.acme = Organization.objects.create(name="Acme")
        self.alice = CrmUser.objects.create(organization=self.acme, name="Alice",
                                            login="alice")

    def _event(self, subject: str) -> Event:
        return Event.objects.create(organization=self.acme, owner=self.alice, subject=subject,
                                    start=START, end=START + dt.timedelta(hours=1))

    def test_it_reports_what_changed_since_it_last_looked(self) -> None:
        Person.objects.create(organization=self.acme, first_name="Before")
        watch = BuiltinCrm.change_watch(events_named=10)
        assert watch is not None
        assert watch.changes() == []   # the start: earlier changes are the schedule's
        assert watch.changes() == []
        Person.objects.create(organization=self.acme, first_name="Eva")
        assert watch.changes() == [OrganizationChanges(self.acme.pk, True, frozenset(),
                                                       frozenset())]
        event = self._event("Porada")
        assert watch.changes() == [OrganizationChanges(
            self.acme.pk, False, frozenset({str(event.pk)}), frozenset({str(self.alice.pk)}))]
        assert watch.changes() == []

    def test_past_the_limit_the_events_are_not_named(self) -> None:
        watch = BuiltinCrm.change_watch(events_named=2)
        assert watch is not None
        watch.changes()
        for subject in ("A", "B", "C"):
            self._event(subject)
        assert watch.changes() == [OrganizationChanges(self.acme.pk, False, None, frozenset())]
