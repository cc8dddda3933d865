"""The duplicates report: pairs side by side, link or keep apart, counts, CSV."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import formats, timezone

from crm.models import Company, Event, Person, PersonCompany
from engine.jobs import run_job
from engine.models import DuplicateCandidate, Link, Run
from ewsim.testing import SimHandle
from tests.engine.sync_helpers import add_contact, exchange_contacts, make_profile
from tests.engine.test_calendar_sync import add_exchange_event, at, crm_event
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


class DecideSelectedTestCase(PortalTestCase):
    """Link or keep apart many pairs at once."""

    def setUp(self) -> None:
        super().setUp()
        self.sign_in(self.dave)
        self.pairs = [self.make_candidate(self.daves, crm_key=str(n), remote_title=f"P{n}")
                      for n in range(1, 5)]
        self.url = reverse("portal:decide_selected")

    def _decisions(self) -> list[str]:
        return [DuplicateCandidate.objects.get(pk=pair.pk).decision for pair in self.pairs]

    def test_the_page_offers_a_checkbox_per_pair_and_the_two_buttons(self) -> None:
        page = self.client.get(reverse("portal:duplicates"))
        self.assertContains(page, 'form="decide-selected"', count=4)
        self.assertContains(page, "Link selected")
        self.assertContains(page, "Keep apart selected")
        self.assertContains(page, 'id="decide-selected"')

    def test_link_selected_links_the_ticked_pairs_only(self) -> None:
        first, _second, third, _fourth = self.pairs
        response = self.client.post(self.url, {
            "pair": [first.pk, third.pk], "decision": "link",
            "next": "/duplicates/?show=all"})
        assert response["Location"] == "/duplicates/?show=all"
        assert self._decisions() == [Decision.LINKED, Decision.OPEN, Decision.LINKED,
                                     Decision.OPEN]
        page = self.client.get(response["Location"])
        self.assertContains(page, "2 pairs will be linked by the next sync.")

    def test_keep_apart_selected_and_pairs_carried_out_stay_as_they_are(self) -> None:
        first, second, *_ = self.pairs
        DuplicateCandidate.objects.filter(pk=first.pk).update(decision=Decision.LINKED,
                                                              applied=True)
        response = self.client.post(self.url, {"pair": [first.pk, second.pk],
                                               "decision": "apart"}, follow=True)
        assert self._decisions()[:2] == [Decision.LINKED, Decision.APART]
        self.assertContains(response, "1 pair will be kept apart")
        self.assertContains(response, "The decision on 1 pair had already been carried out")

    def test_a_pair_of_someone_else_refuses_the_whole_request(self) -> None:
        others = self.make_candidate(self.charlies, crm_key="9")
        response = self.client.post(self.url, {"pair": [self.pairs[0].pk, others.pk],
                                               "decision": "link"})
        assert response.status_code == 404
        assert self._decisions() == [Decision.OPEN] * 4
        assert DuplicateCandidate.objects.get(pk=others.pk).decision == Decision.OPEN
        # Made-up ids and decisions are no better.
        assert self.client.post(self.url, {"pair": ["x"], "decision": "link"}
                                ).status_code == 404
        assert self.client.post(self.url, {"pair": [self.pairs[0].pk],
                                           "decision": "delete"}).status_code == 404

    def test_an_organization_administrator_decides_for_the_organizations_pairs(self) -> None:
        self.sign_in(self.bob)
        eves = self.make_candidate(self.eves, crm_key="7")
        self.client.post(self.url, {"pair": [self.pairs[1].pk, eves.pk], "decision": "link"})
        assert DuplicateCandidate.objects.get(pk=eves.pk).decision == Decision.LINKED
        assert self._decisions()[1] == Decision.LINKED

    def test_nothing_ticked_says_so(self) -> None:
        response = self.client.post(self.url, {"decision": "link"}, follow=True)
        self.assertContains(response, "Tick the pairs to decide first.")
        assert self._decisions() == [Decision.OPEN] * 4

    def test_it_needs_the_csrf_token_and_a_post(self) -> None:
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.dave)
        response = client.post(self.url, {"pair": [self.pairs[0].pk], "decision": "link"})
        assert response.status_code == 403
        assert self.client.get(self.url).status_code == 405
        assert self._decisions() == [Decision.OPEN] * 4


@pytest.mark.django_db(transaction=True)
def test_a_calendar_pair_is_shown_as_two_meetings(ewsim: SimHandle) -> None:
    """A sync finds two CRM meetings like one in Exchange: the page shows meetings, not
    contacts: subject, when, organizer and location of both sides."""
    profile = make_profile(ewsim)
    crm_event(profile, "Porada", at(1, 10), location="Zasedačka")
    crm_event(profile, "Porada", at(1, 10), location="Sklad")
    add_exchange_event(ewsim, "Porada", at(1, 10),
                       extra="<t:Location>Velká zasedačka</t:Location>")
    assert run_job(profile.pk, "calendar") == Run.Status.SUCCESS
    pairs = DuplicateCandidate.objects.filter(profile=profile, agenda="calendar")
    assert pairs.count() == 2
    client = Client()
    client.force_login(profile.user)
    page = client.get(reverse("portal:duplicates")).content.decode()
    card = page.split(f'id="pair-{pairs[0].pk}"')[1].split("</article>")[0]
    start = timezone.localtime(at(1, 10))
    when = (formats.date_format(start, "SHORT_DATETIME_FORMAT") + "–"
            + formats.time_format(start + dt.timedelta(hours=1), "TIME_FORMAT"))
    for text in ("Possibly the same meeting: Porada", "They have the same subject and start.",
                 "Subject", "When", when, "Organizer", "alice@example.com", "Location",
                 "Velká zasedačka"):
        assert text in card, text
    assert "Shared address" not in card and "E-mail" not in card
    # The places differ; subject and time do not; the owner is no organizer to compare.
    assert "Fields that differ: Location" in card
    assert card.count('class="differs"') == 2
    assert "Duplicate contacts" not in page
