"""The "…" category picker: the admin lists a profile's mailbox's master category list live,
from ewsim (EWS and Graph), when our own page POSTs for it with its CSRF token; the category
fields stay free text."""

from __future__ import annotations

import json
from unittest import mock

from django.conf import settings
from django.contrib import admin
from django.test import Client
from django.utils import translation
from django.utils.translation import gettext

from crm.models import EventCategory
from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import CategoryPairing, MailboxConnection, SyncProfile
from tests.engine.mailbox.graph_access import CLIENT_ID, CLIENT_SECRET, TENANT, add_app
from tests.profiles.admin_data import profile_form_data
from tests.profiles.ewsim_cases import EwsimAdminTestCase
from tests.profiles.test_folder_picker import _inputs

CATEGORIES = [{"name": "Registrace", "color": "preset7"}, {"name": "Hotline", "color": 0},
              {"name": "Bez barvy", "color": "none"}]
LISTED = [{"name": "Bez barvy", "color": "none", "hex": "", "color_name": "No colour"},
          {"name": "Hotline", "color": "preset0", "hex": "#e7484b", "color_name": "Red"},
          {"name": "Registrace", "color": "preset7", "hex": "#3d8be0", "color_name": "Blue"}]


def categories_url(profile: SyncProfile) -> str:
    return f"/admin/profiles/syncprofile/{profile.pk}/categories/"


class CategoryPickerTestCase(EwsimAdminTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.profile = self.make_profile(self.acme, self.dave, "alice@example.com",
                                         connection=self.ews_connection(self.acme))
        self.foreign = self.make_profile(self.globex, self.charlie, "charlie@globex.example",
                                         connection=self.ews_connection(self.globex))
        self.sim.control.set_categories("alice@example.com", CATEGORIES)

    def test_the_mailboxs_categories_come_sorted_with_their_colours(self) -> None:
        self.client.force_login(self.bob)
        response = self.client.post(categories_url(self.profile))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"categories": LISTED})

    def test_a_graph_mailbox_lists_the_same_categories(self) -> None:
        add_app(self.sim)
        connection = self.make_connection(
            self.acme, name="Graph", kind="graph", ews_url=self.sim.graph_url,
            auth_type=MailboxConnection.Auth.OAUTH2, username="", tenant_id=TENANT,
            client_id=CLIENT_ID, verify_tls=False,
            token_url=f"{self.sim.https_base_url}/{TENANT}/oauth2/v2.0/token")
        connection.set_secret(CLIENT_SECRET)
        connection.save()
        self.profile.connection = connection
        self.profile.save()
        self.client.force_login(self.bob)
        response = self.client.post(categories_url(self.profile))
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json(), {"categories": LISTED})

    def test_a_mailbox_without_a_category_list_lists_none(self) -> None:
        self.sim.control.set_categories("alice@example.com", None)
        self.client.force_login(self.bob)
        self.assertEqual(self.client.post(categories_url(self.profile)).json(),
                         {"categories": []})

    def test_a_mailbox_error_comes_back_as_plain_words_in_json(self) -> None:
        connection = self.profile.connection
        connection.set_secret("wrong")
        connection.save()
        self.client.force_login(self.bob)
        response = self.client.post(categories_url(self.profile))
        self.assertEqual(response.status_code, 502)
        self.assertIn("Authentication failed", response.json()["error"])

    def test_an_organization_admin_cannot_list_another_organizations_categories(self) -> None:
        self.sim.control.reset_counters()
        self.client.force_login(self.bob)
        response = self.client.post(categories_url(self.foreign))
        self.assertEqual(response.status_code, 404)
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_the_other_organizations_admin_lists_their_own(self) -> None:
        self.sim.control.set_categories("charlie@globex.example", [{"name": "Globex"}])
        self.client.force_login(self.charlie)
        self.assertEqual(self.client.post(categories_url(self.profile)).status_code, 404)
        response = self.client.post(categories_url(self.foreign))
        self.assertEqual([c["name"] for c in response.json()["categories"]], ["Globex"])

    def test_listing_categories_needs_the_right_to_change_the_profile(self) -> None:
        self.client.force_login(self.bob)
        profile_admin = admin.site._registry[SyncProfile]
        with mock.patch.object(profile_admin, "has_change_permission", return_value=False):
            response = self.client.post(categories_url(self.profile))
        self.assertEqual(response.status_code, 403)

    def test_a_plain_user_is_sent_to_the_login_page(self) -> None:
        self.client.force_login(self.dave)
        response = self.client.post(categories_url(self.profile))
        self.assertEqual(response.status_code, 302)
        self.assertIn("/admin/login/", response["Location"])

    def test_a_get_or_a_post_without_the_csrf_token_sends_nothing_to_the_server(self) -> None:
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.bob)
        self.sim.control.reset_counters()
        self.assertEqual(client.get(categories_url(self.profile)).status_code, 405)
        self.assertEqual(client.post(categories_url(self.profile)).status_code, 403)
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_the_change_pages_csrf_token_lets_the_picker_post_for_the_list(self) -> None:
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.bob)
        page = client.get(f"/admin/profiles/syncprofile/{self.profile.pk}/change/")
        token = _inputs(page.content.decode())["csrfmiddlewaretoken"]["value"]
        response = client.post(categories_url(self.profile), {"csrfmiddlewaretoken": token})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"categories": LISTED})

    def test_the_change_page_marks_both_category_fields_for_the_picker(self) -> None:
        self.client.force_login(self.bob)
        html = self.client.get(
            f"/admin/profiles/syncprofile/{self.profile.pk}/change/").content.decode()
        inputs = _inputs(html)
        pairing = inputs["category_pairings-__prefix__-exchange_category"]
        self.assertEqual(pairing["data-category-list-url"], categories_url(self.profile))
        self.assertEqual(pairing["data-category-multiple"], "false")
        self.assertNotIn("readonly", pairing)   # free text stays possible
        self.assertIn(f'data-category-list-url="{categories_url(self.profile)}"', html)
        self.assertIn('data-category-multiple="true"', html)   # the contacts' textarea
        self.assertIn("profiles/category_picker.js", html)
        self.assertIn("profiles/category_picker.css", html)

    def test_the_hint_is_given_once_however_often_the_page_is_shown(self) -> None:
        self.client.force_login(self.bob)
        url = f"/admin/profiles/syncprofile/{self.profile.pk}/change/"
        counts = [self.client.get(url).content.decode().count("Choose them from the mailbox")
                  for _ in range(3)]
        self.assertEqual(counts, [counts[0]] * 3)
        self.assertLessEqual(counts[0], 4)   # form and empty form: help text and data attribute

    def test_the_pickers_words_come_in_the_administrators_language(self) -> None:
        self.client.force_login(self.bob)
        url = f"/admin/profiles/syncprofile/{self.profile.pk}/change/"
        english = _inputs(self.client.get(url).content.decode())[
            "category_pairings-__prefix__-exchange_category"]
        self.assertEqual(json.loads(english["data-category-texts"])["close"], "Close")
        with translation.override("cs"):
            expected = gettext("Close")
        czech = _inputs(self.client.get(url, headers={"accept-language": "cs"})
                        .content.decode())["category_pairings-__prefix__-exchange_category"]
        self.addCleanup(translation.activate, settings.LANGUAGE_CODE)
        self.assertEqual(json.loads(czech["data-category-texts"])["close"], expected)
        self.assertNotEqual(expected, "Close")

    def test_the_add_page_says_the_names_are_typed_until_the_profile_is_saved(self) -> None:
        self.client.force_login(self.bob)
        html = self.client.get("/admin/profiles/syncprofile/add/").content.decode()
        self.assertIn('data-category-list-url=""', html)
        self.assertIn("once the profile is saved", html)

    def test_picked_and_typed_categories_are_saved(self) -> None:
        hotline = EventCategory.objects.create(organization=self.acme, name="HOTLINE")
        novinka = EventCategory.objects.create(organization=self.acme, name="NOVINKA")
        self.client.force_login(self.bob)
        data = profile_form_data(
            profile=self.profile, organization_id=None, user_id=self.dave.id,
            crm_user_id=self.profile.crm_user_id, connection_id=self.profile.connection_id,
            mailbox=self.profile.mailbox,
            contacts={"only_categories": "Hotline\nNot listed yet"},
            pairings=[(hotline.id, "Hotline"), (novinka.id, "Novinka")])
        response = self.client.post(f"/admin/profiles/syncprofile/{self.profile.pk}/change/",
                                    data)
        self.assertEqual(response.status_code, 302, response.content[:3000])
        profile = SyncProfile.objects.get(pk=self.profile.pk)
        self.assertEqual(profile.contactsettings.only_categories, ["Hotline", "Not listed yet"])
        self.assertEqual(sorted(CategoryPairing.objects.filter(profile=profile)
                                .values_list("exchange_category", flat=True)),
                         ["Hotline", "Novinka"])
