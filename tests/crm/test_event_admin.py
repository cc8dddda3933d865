"""The CRM admin's events and e-mails as a person reads them: times on the event's own wall
clock, labelled with its zone; series, deleted occurrences and recipients in words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.test import override_settings

from crm.models import CrmUser, Email, Event, Person
from tests.base import BaseTestCase

EVENTS = "/admin/crm/event/"
# 14:00 in Prague on a winter day; 13:00 UTC.
WINTER_START = datetime(2027, 1, 15, 13, tzinfo=UTC)
WINTER_END = datetime(2027, 1, 15, 14, tzinfo=UTC)


class EventTimesAdminTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.owner = CrmUser.objects.create(organization=self.acme, name="Bob", login="bob")
        self.client.force_login(self.bob)

    def _event(self, **fields: Any) -> Event:
        values = {"organization": self.acme, "owner": self.owner, "subject": "Board meeting",
                  "start": WINTER_START, "end": WINTER_END, "time_zone": "Europe/Prague",
                  **fields}
        return Event.objects.create(**values)

    def _form_data(self, event: Event | None = None, **fields: Any) -> dict[str, Any]:
        data = {"owner": self.owner.pk, "subject": "Board meeting", "start_0": "2027-01-15",
                "start_1": "14:00", "end_0": "2027-01-15", "end_1": "15:00",
                "time_zone": "Europe/Prague", "location": "", "body": "", "category": "",
                "status": "", "recurrence_master": "", "original_start_0": "",
                "original_start_1": "", "uid": ""}
        return {**data, **fields}

    # The site's zone is UTC here, so the old admin (the site's zone) shows 13:00, not 14:00.
    @override_settings(TIME_ZONE="UTC")
    def test_the_change_list_shows_an_events_times_in_its_own_zone_with_its_name(self) -> None:
        self._event()
        page = self.client.get(EVENTS).content.decode()
        self.assertIn("15 January 2027, 14:00 – 15:00 (Europe/Prague)", page)
        self.assertNotIn("(UTC)", page)

    @override_settings(TIME_ZONE="UTC")
    def test_an_all_day_event_is_listed_by_its_days_in_its_zone(self) -> None:
        # Midnight to midnight in Prague: 23:00 to 23:00 UTC, the day before.
        self._event(all_day=True, start=datetime(2027, 1, 14, 23, tzinfo=UTC),
                    end=datetime(2027, 1, 16, 23, tzinfo=UTC))
        page = self.client.get(EVENTS).content.decode()
        self.assertIn("15 January 2027 – 16 January 2027, all day", page)

    @override_settings(TIME_ZONE="UTC")
    def test_the_change_form_shows_and_labels_the_times_in_the_events_zone(self) -> None:
        event = self._event()
        response = self.client.get(f"{EVENTS}{event.pk}/change/")
        self.assertContains(response, 'name="start_1" value="14:00:00"')
        self.assertContains(response, 'name="end_1" value="15:00:00"')
        self.assertContains(response, "Start (Europe/Prague)")
        self.assertNotContains(response, "(UTC)")

    @override_settings(TIME_ZONE="UTC")
    def test_14_00_entered_for_a_prague_event_is_14_00_in_prague(self) -> None:
        response = self.client.post(EVENTS + "add/", self._form_data())
        self.assertEqual(response.status_code, 302, response.content[:3000])
        event = Event.objects.get(subject="Board meeting")
        self.assertEqual((event.start, event.end), (WINTER_START, WINTER_END))
        self.assertEqual(event.time_zone, "Europe/Prague")

    def test_a_time_is_read_in_the_zone_chosen_in_the_same_form(self) -> None:
        # The site's zone (Prague) would make this 13:00 UTC; New York makes it 19:00 UTC.
        event = self._event()
        response = self.client.post(f"{EVENTS}{event.pk}/change/",
                                    self._form_data(time_zone="America/New_York"))
        self.assertEqual(response.status_code, 302, response.content[:3000])
        event.refresh_from_db()
        self.assertEqual(event.start, datetime(2027, 1, 15, 19, tzinfo=UTC))
        self.assertEqual(event.time_zone, "America/New_York")

    def test_the_date_widgets_clock_is_the_events_zone(self) -> None:
        # Their "Now" and their "N hours ahead of the server" note use the page's offset.
        event = self._event(time_zone="America/New_York")
        response = self.client.get(f"{EVENTS}{event.pk}/change/")
        self.assertContains(response, 'data-admin-utc-offset="-18000"')

    def test_a_time_the_clocks_skip_is_refused_in_words(self) -> None:
        # Prague springs forward from 02:00 to 03:00 on 28 March 2027.
        response = self.client.post(EVENTS + "add/", self._form_data(
            start_0="2027-03-28", start_1="02:30", end_0="2027-03-28", end_1="04:00"))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "02:30 does not exist in Europe/Prague")
        self.assertFalse(Event.objects.exists())


class JsonFieldsInWordsTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.owner = CrmUser.objects.create(organization=self.acme, name="Bob", login="bob")
        self.client.force_login(self.bob)

    def test_a_series_and_its_deleted_occurrences_read_as_sentences_and_dates(self) -> None:
        series = Event.objects.create(
            organization=self.acme, owner=self.owner, subject="Stand-up", start=WINTER_START,
            end=WINTER_END, time_zone="Europe/Prague",
            recurrence={"pattern": {"type": "weekly", "interval": 2,
                                    "weekdays": ["Monday", "Wednesday"]},
                        "range": {"start": "2027-01-04", "end": "2027-03-31", "count": None}},
            deleted_occurrences=["2027-01-20T13:00:00+00:00"])
        response = self.client.get(f"{EVENTS}{series.pk}/change/")
        self.assertContains(
            response, "every 2 weeks on Monday and Wednesday, until 31 March 2027")
        self.assertContains(response, "<div>20 January 2027, 14:00</div>", html=True)
        self.assertNotContains(response, "&quot;pattern&quot;")
        self.assertNotContains(response, 'name="recurrence"')

    def test_a_series_saved_in_the_admin_keeps_its_rule(self) -> None:
        rule = {"pattern": {"type": "daily", "interval": 1}, "range": {"count": 5}}
        series = Event.objects.create(
            organization=self.acme, owner=self.owner, subject="Daily", start=WINTER_START,
            end=WINTER_END, time_zone="Europe/Prague", recurrence=rule)
        response = self.client.get(f"{EVENTS}{series.pk}/change/")
        self.assertContains(response, "every day, 5 times")
        data = {"owner": self.owner.pk, "subject": "Daily, renamed", "start_0": "2027-01-15",
                "start_1": "14:00", "end_0": "2027-01-15", "end_1": "15:00",
                "time_zone": "Europe/Prague", "uid": ""}
        response = self.client.post(f"{EVENTS}{series.pk}/change/", data)
        self.assertEqual(response.status_code, 302, response.content[:3000])
        series.refresh_from_db()
        self.assertEqual((series.subject, series.recurrence), ("Daily, renamed", rule))

    def test_an_emails_recipients_read_as_name_and_address_lines(self) -> None:
        jana = Person.objects.create(organization=self.acme, first_name="Jana",
                                     last_name="Nováková", email1="jana@acme.example")
        email = Email.objects.create(
            organization=self.acme, subject="Offer", sender_address="bob@acme.example",
            recipients={"to": ["JANA@acme.example"], "cc": ["petr@globex.example"]})
        email.persons.add(jana)
        response = self.client.get(f"/admin/crm/email/{email.pk}/change/")
        self.assertContains(response, "<div>To: Jana Nováková &lt;JANA@acme.example&gt;</div>",
                            html=True)
        self.assertContains(response, "<div>Cc: petr@globex.example</div>", html=True)
        self.assertNotContains(response, 'name="recipients"')
