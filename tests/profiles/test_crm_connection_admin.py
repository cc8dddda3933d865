"""The CRM connection in the admin: its kind chosen from the registered ones, the kind's
settings and write-only secrets, "Test connection", each organization's own only, and the
profile options its CRM cannot honour hidden and refused."""

from __future__ import annotations

from typing import Any

from crm.models import ClassificationNode, CrmUser, EventStatus
from profiles.models import CrmConnection, SyncProfile
from tests.base import BaseTestCase
from tests.profiles.admin_data import profile_form_data

BASE = "/admin/profiles/crmconnection/"


def connection_form(kind: str, organization: int | None = None, **values: str) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": kind, **{f"{kind}__{k}": v for k, v in values.items()}}
    if organization is not None:
        data["organization"] = organization
    return data


class CrmConnectionAdminTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connection = self.acme.crm_connection
        self.change_url = f"{BASE}{self.connection.pk}/change/"

    def test_the_kind_is_chosen_among_the_registered_ones_with_its_own_fields(self) -> None:
        self.client.force_login(self.alice)
        page = self.client.get(self.change_url)
        self.assertContains(page, '<option value="builtin" selected>Built-in CRM store</option>',
                            html=True)
        self.assertContains(page, '<option value="limited">Limited CRM (tests)</option>',
                            html=True)
        self.assertContains(page, "crm-kind-limited")
        self.assertContains(page, 'name="limited__api_key"')
        self.assertContains(page, "profiles/crm_kind.js")

    def test_switching_the_kind_keeps_its_settings_and_the_secret_never_shows_again(
            self) -> None:
        self.client.force_login(self.alice)
        response = self.client.post(self.change_url, connection_form(
            "limited", self.acme.pk, instance="acme-crm", user="sync", api_key="k-secret-123"))
        assert response.status_code == 302, response.content[:2000]
        self.connection.refresh_from_db()
        assert self.connection.kind == "limited"
        assert self.connection.settings == {"instance": "acme-crm", "user": "sync"}
        assert self.connection.get_secret("api_key") == "k-secret-123"
        page = self.client.get(self.change_url)
        self.assertNotContains(page, "k-secret-123")
        self.assertContains(page, "A secret is stored (encrypted). Leave blank to keep it.")
        self.assertContains(page, 'value="acme-crm"')
        # Saved again with the key left blank: it stays.
        response = self.client.post(self.change_url, connection_form(
            "limited", self.acme.pk, instance="acme-crm", user="sync", api_key=""))
        assert response.status_code == 302
        self.connection.refresh_from_db()
        assert self.connection.get_secret("api_key") == "k-secret-123"
        # Sent somewhere else, the key must be entered again.
        page = self.client.post(self.change_url, connection_form(
            "limited", self.acme.pk, instance="elsewhere", user="sync", api_key=""))
        self.assertContains(page, "enter API key again")
        response = self.client.post(self.change_url, connection_form(
            "limited", self.acme.pk, instance="elsewhere", user="sync", api_key="k-new"))
        assert response.status_code == 302
        self.connection.refresh_from_db()
        assert self.connection.get_secret("api_key") == "k-new"
        # Back to the built-in store: nothing of the other kind is kept.
        response = self.client.post(self.change_url, connection_form("builtin", self.acme.pk))
        assert response.status_code == 302
        self.connection.refresh_from_db()
        assert (self.connection.kind, self.connection.settings,
                self.connection.secret_token) == ("builtin", {}, "")

    def test_a_kinds_missing_settings_are_named_on_the_form(self) -> None:
        self.client.force_login(self.alice)
        page = self.client.post(self.change_url, connection_form(
            "limited", self.acme.pk, instance="acme-crm"))
        assert page.status_code == 200
        self.assertContains(page, "user name is required for this kind of CRM.")
        self.assertContains(page, "API key is required for this kind of CRM.")
        self.connection.refresh_from_db()
        assert self.connection.kind == "builtin"

    def test_test_connection_shows_the_kinds_diagnosis(self) -> None:
        self.client.force_login(self.alice)
        self.assertContains(self.client.get(self.change_url), "test-connection/")
        page = self.client.post(f"{BASE}{self.connection.pk}/test-connection/", follow=True)
        self.assertContains(page, "The built-in CRM store answers")
        self.assertContains(page, "add a CRM user")
        CrmUser.objects.create(organization=self.acme, name="Dave", login="dave")
        page = self.client.post(BASE, {"action": "test_connection",
                                       "_selected_action": [self.connection.pk]}, follow=True)
        self.assertContains(page, "1 active CRM user")
        self.assertNotContains(page, "add a CRM user")

    def test_testing_is_asked_by_post_only(self) -> None:
        self.client.force_login(self.alice)
        assert self.client.get(f"{BASE}{self.connection.pk}/test-connection/").status_code \
            == 405


class CrmConnectionTenantTestCase(BaseTestCase):
    def test_an_organization_admin_sees_and_changes_only_their_own_connection(self) -> None:
        acme, globex = self.acme.crm_connection, self.globex.crm_connection
        self.client.force_login(self.bob)
        listing = self.client.get(BASE)
        self.assertContains(listing, f"{BASE}{acme.pk}/change/")
        self.assertNotContains(listing, "Globex")
        for url in (f"{BASE}{globex.pk}/change/", f"{BASE}{globex.pk}/delete/"):
            assert self.client.get(url).status_code == 404, url
        assert self.client.post(f"{BASE}{globex.pk}/test-connection/").status_code == 404
        assert self.client.post(f"{BASE}{globex.pk}/change/", connection_form(
            "limited", instance="x", user="y", api_key="z")).status_code == 404
        # Their own: changed without choosing an organization (it is theirs).
        page = self.client.get(f"{BASE}{acme.pk}/change/")
        self.assertNotContains(page, 'name="organization"')
        response = self.client.post(f"{BASE}{acme.pk}/change/", connection_form(
            "limited", instance="acme", user="sync", api_key="k"))
        assert response.status_code == 302
        acme.refresh_from_db()
        globex.refresh_from_db()
        assert (acme.kind, acme.organization_id) == ("limited", self.acme.pk)
        assert globex.kind == "builtin"
        # One connection each: nothing to add while theirs exists.
        assert self.client.get(f"{BASE}add/").status_code == 403

    def test_a_plain_user_has_no_access(self) -> None:
        self.client.force_login(self.dave)
        assert self.client.get(BASE).status_code in (302, 403)


class CrmCapabilityOptionsTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        self.branch = ClassificationNode.objects.create(organization=self.acme, name="Zákazníci")
        self.url = f"/admin/profiles/syncprofile/{self.profile.pk}/change/"

    def use_limited_crm(self) -> None:
        connection = self.acme.crm_connection
        connection.kind = "limited"
        connection.settings = {"instance": "acme", "user": "sync"}
        connection.save()

    def post_profile(self, **contacts: Any) -> Any:
        return self.client.post(self.url, profile_form_data(
            profile=self.profile, organization_id=self.acme.pk, user_id=self.dave.pk,
            crm_user_id=self.profile.crm_user_id, connection_id=self.profile.connection_id,
            mailbox=self.profile.mailbox, contacts=contacts))

    def test_the_built_in_store_offers_every_option(self) -> None:
        self.client.force_login(self.bob)
        page = self.client.get(self.url)
        self.assertContains(page, 'name="contactsettings-0-classification_node"')
        self.assertContains(page, '<option value="branch">A classification branch</option>',
                            html=True)
        self.assertContains(page, 'name="calendarsettings-0-imported_status"')

    def test_options_the_crm_cannot_honour_are_hidden(self) -> None:
        self.use_limited_crm()
        self.client.force_login(self.bob)
        page = self.client.get(self.url)
        self.assertNotContains(page, 'name="contactsettings-0-classification_node"')
        self.assertNotContains(page, '<option value="branch"')
        self.assertNotContains(page, 'name="calendarsettings-0-imported_status"')
        self.assertContains(page, 'name="contactsettings-0-scope"')
        self.assertContains(page, 'name="calendarsettings-0-link_attendees"')

    def test_saving_an_option_the_crm_cannot_honour_is_refused_in_words(self) -> None:
        self.use_limited_crm()
        self.client.force_login(self.bob)
        page = self.post_profile(scope="branch", classification_node=self.branch.pk)
        assert page.status_code == 200
        self.assertContains(page, "has no classification tree")
        self.profile.contactsettings.refresh_from_db()
        assert self.profile.contactsettings.scope == "owned"
        assert self.post_profile(scope="organization").status_code == 302

    def test_a_superusers_add_page_refuses_them_once_the_organization_is_known(self) -> None:
        self.use_limited_crm()
        self.client.force_login(self.alice)
        status = EventStatus.objects.create(organization=self.acme, name="Importováno")
        crm_user = CrmUser.objects.create(organization=self.acme, name="Eve", login="eve")
        page = self.client.post("/admin/profiles/syncprofile/add/", profile_form_data(
            organization_id=self.acme.pk, user_id=self.dave.pk, crm_user_id=crm_user.pk,
            connection_id=self.profile.connection_id, mailbox="eve@acme.example",
            calendar={"imported_status": status.pk}))
        assert page.status_code == 200
        self.assertContains(page, "has no event statuses")
        assert not SyncProfile.objects.filter(mailbox="eve@acme.example").exists()
        assert CrmConnection.objects.get(organization=self.acme).kind == "limited"
