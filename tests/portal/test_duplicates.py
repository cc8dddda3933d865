"""The duplicates report: pairs side by side, link or keep apart, counts, CSV."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from crm.models import Company, Event, Person, PersonCompany
from engine.jobs import run_job
from engine.models import DuplicateCandidate, Link, Run
from ewsim.testing import SimHandle
from tests.engine.sync_helpers import add_contact, exchange_contacts, make_profile
from tests.engine.test_contacts_sync import add_exchange_contact
from tests.portal.base import PortalTestCase
from tests.portal.test_history import csv_rows

Decision = DuplicateCandidate.Decision


class DuplicatesTestCase(PortalTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.sign_in(self.dave)
        self.petr = Person.objects.create(
            organization=self.acme, first_name="Petr", last_name="Svoboda",
            email1="info@stavby.cz", job_title="Stavbyvedoucí", phone_mobile="+420 601 111 222",
            business_city="Brno")
        PersonCompany.objects.create(person=self.petr, company=Company.objects.create(
            organization=self.acme, name="Stavby Brno s.r.o."))
        self.pair = self.make_candidate(self.daves, crm_key=str(self.petr.pk),
                                        remote_title="P. Svoboda")

    def test_a_pair_shows_the_crm_person_beside_the_exchange_contact(self) -> None:
        page = self.client.get(reverse("portal:duplicates"))
        for text in ("Shared address info@stavby.cz", "Petr Svoboda", "Stavby Brno s.r.o.",
                     "Stavbyvedoucí", "+420 601 111 222", "Brno", "P. Svoboda",
                     "In the CRM", "In Exchange", "Link", "Keep apart"):
            self.assertContains(page, text)
        assert page.context["counts"] == {"open": 1, "to_link": 0, "to_keep_apart": 0,
                                          "done": 0}

    def test_a_person_no_longer_in_the_crm_is_said_to_be_gone(self) -> None:
        self.petr.delete()
        self.assertContains(self.client.get(reverse("portal:duplicates")),
                            "No longer in the CRM.")

    def test_a_calendar_pair_shows_the_crm_event(self) -> None:
        from django.utils import timezone

        event = Event.objects.create(organization=self.acme, owner=self.daves.crm_user,
                                     subject="Porada", location="Zasedačka",
                                     start=timezone.now(), end=timezone.now())
        self.make_candidate(self.daves, agenda="calendar", crm_key=str(event.pk),
                            crm_title="Porada", address="uid:1234")
        page = self.client.get(reverse("portal:duplicates"))
        self.assertContains(page, "Zasedačka")

    def test_link_records_the_decision_for_the_next_sync(self) -> None:
        response = self.client.post(reverse("portal:link", args=[self.pair.pk]), follow=True)
        self.assertContains(response, "will be linked by the next sync")
        self.pair.refresh_from_db()
        assert self.pair.decision == Decision.LINKED and self.pair.decided is not None
        assert not self.pair.applied
        assert response.context["counts"]["to_link"] == 1
        # Not carried out yet: the decision can still change.
        self.client.post(reverse("portal:keep_apart", args=[self.pair.pk]))
        self.pair.refresh_from_db()
        assert self.pair.decision == Decision.APART

    def test_a_decision_carried_out_cannot_change(self) -> None:
        DuplicateCandidate.objects.filter(pk=self.pair.pk).update(
            decision=Decision.LINKED, applied=True)
        response = self.client.post(reverse("portal:keep_apart", args=[self.pair.pk]),
                                    follow=True)
        self.assertContains(response, "has already been carried out")
        self.pair.refresh_from_db()
        assert self.pair.decision == Decision.LINKED
        done = self.client.get(reverse("portal:duplicates") + "?show=done")
        self.assertContains(done, "Linked.")
        self.assertNotContains(done, 'class="primary link-pair"')

    def test_the_filter_shows_open_pairs_by_default(self) -> None:
        decided = self.make_candidate(self.daves, remote_title="Another", decision=Decision.APART)
        listed = self.client.get(reverse("portal:duplicates")).context["page"].items
        assert list(listed) == [self.pair]
        listed = self.client.get(reverse("portal:duplicates") + "?show=decided")
        assert list(listed.context["page"].items) == [decided]
        assert len(self.client.get(reverse("portal:duplicates") + "?show=all")
                   .context["page"].items) == 2

    def test_it_goes_back_to_the_page_it_came_from_but_never_elsewhere(self) -> None:
        response = self.client.post(reverse("portal:link", args=[self.pair.pk]),
                                    {"next": "/duplicates/?show=all"})
        assert response["Location"] == "/duplicates/?show=all"
        response = self.client.post(reverse("portal:link", args=[self.pair.pk]),
                                    {"next": "https://evil.example/"})
        assert response["Location"] == reverse("portal:duplicates")

    def test_the_report_exports_as_csv(self) -> None:
        rows = csv_rows(self.client.get(reverse("portal:duplicates_csv") + "?show=all"))
        assert rows[0][:5] == ["Profile", "Agenda", "Decision", "Carried out", "Shared address"]
        assert rows[1][:8] == ["dave@acme.example", "Contacts", "waiting for a decision", "no",
                               "info@stavby.cz", "Petr Svoboda", str(self.petr.pk),
                               "P. Svoboda"]

    def test_staff_get_a_link_to_the_person_in_the_admin(self) -> None:
        self.sign_in(self.bob)
        self.assertContains(self.client.get(reverse("portal:duplicates")),
                            reverse("admin:crm_person_change", args=[self.petr.pk]))


@pytest.mark.django_db(transaction=True)
def test_linking_a_pair_on_the_page_links_it_at_the_next_sync(ewsim: SimHandle) -> None:
    """The whole way: a sync finds the pair, the user links it here, the next sync links."""
    profile = make_profile(ewsim)
    add_exchange_contact(ewsim, "Petr", "Svoboda", "info@stavby.cz")
    petr, _pavel = (Person.objects.create(organization_id=profile.organization_id,
                                          first_name=first, last_name="Svoboda",
                                          email1="info@stavby.cz") for first in ("Petr", "Pavel"))
    assert run_job(profile.pk, "contacts") == Run.Status.SUCCESS
    pair = DuplicateCandidate.objects.get(profile=profile, crm_key=str(petr.pk))
    client = Client()
    client.force_login(profile.user)
    assert client.post(reverse("portal:link", args=[pair.pk])).status_code == 302
    assert run_job(profile.pk, "contacts") == Run.Status.SUCCESS
    link = Link.objects.get(profile=profile, crm_key=str(petr.pk))
    assert exchange_contacts(ewsim)[link.remote_id].first_name == "Petr"
    pair.refresh_from_db()
    assert pair.applied
    page = client.get(reverse("portal:duplicates") + "?show=done")
    assert "Linked." in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_page_shows_every_field_in_which_the_pair_differs(ewsim: SimHandle) -> None:
    """A sync parks the pairs; the page shows both records and marks where they differ."""
    profile = make_profile(ewsim)
    organization = profile.organization_id
    jan = Person.objects.create(organization_id=organization, first_name="Jan",
                                last_name="Novotný", email1="jan@novotny.cz",
                                job_title="Ředitel", phone_mobile="+420 603 111 222")
    add_contact(ewsim, "Honza", "Novotny", email="jan@novotny.cz", job_title="Director",
                department="Prodej")
    Person.objects.create(organization_id=organization, first_name="Eva", last_name="Malá")
    add_contact(ewsim, "Eva", "Mala")
    assert run_job(profile.pk, "contacts") == Run.Status.SUCCESS
    client = Client()
    client.force_login(profile.user)
    page = client.get(reverse("portal:duplicates"))
    pair = DuplicateCandidate.objects.get(profile=profile, crm_key=str(jan.pk))
    card = page.content.decode().split(f'id="pair-{pair.pk}"')[1].split("</article>")[0]
    for text in ("Shared address jan@novotny.cz", "Jan", "Honza", "Novotný", "Novotny",
                 "Ředitel", "Director", "Prodej", "+420 603 111 222",
                 "Fields that differ: First name, Last name, Job title, Department, "
                 "Mobile phone"):
        assert text in card, text
    assert card.count('class="differs"') == 2 * 5
    # The other pair: no address on either side, the same name.
    whole = page.content.decode()
    assert "The same name and company, no e-mail address" in whole
    assert "Fields that differ: Last name" in whole
