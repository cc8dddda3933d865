"""The "…" folder picker: the admin lists a profile's mailbox folders live, from ewsim, when
our own page POSTs for them with its CSRF token."""

from __future__ import annotations

from html.parser import HTMLParser
from unittest import mock

from django.contrib import admin
from django.test import Client

from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import MailboxConnection, MailFolder, SyncProfile
from tests.profiles.admin_data import profile_form_data
from tests.profiles.ewsim_cases import EwsimAdminTestCase


class _InputParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str | None]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "input" and attributes.get("name"):
            self.inputs[str(attributes["name"])] = attributes


def _inputs(html: str) -> dict[str, dict[str, str | None]]:
    parser = _InputParser()
    parser.feed(html)
    return parser.inputs


def folders_url(profile: SyncProfile, kind: str) -> str:
    return f"/admin/profiles/syncprofile/{profile.pk}/folders/{kind}/"


class FolderPickerTestCase(EwsimAdminTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.profile = self.make_profile(self.acme, self.dave, "alice@example.com",
                                         connection=self.ews_connection(self.acme))
        self.foreign = self.make_profile(self.globex, self.charlie, "charlie@globex.example",
                                         connection=self.ews_connection(self.globex))
        self.crm_folder = self.sim.control.call("POST", "folders", {
            "mailbox": "alice@example.com", "parent": "calendar", "name": "CRM",
            "folder_class": "IPF.Appointment"})

    def test_the_calendar_folders_come_as_a_tree_with_display_paths(self) -> None:
        self.client.force_login(self.bob)
        response = self.client.post(folders_url(self.profile, "calendar"))
        self.assertEqual(response.status_code, 200)
        folders = response.json()["folders"]
        self.assertEqual([(f["path"], f["name"], f["depth"]) for f in folders],
                         [("Calendar", "Calendar", 0), ("Calendar/CRM", "CRM", 1)])
        self.assertEqual(folders[1]["id"], self.crm_folder["id"])
        self.assertEqual(folders[1]["parent_id"], folders[0]["id"])

    def test_contact_and_mail_folders_are_listed_by_their_own_kind(self) -> None:
        self.client.force_login(self.alice)
        contacts = self.client.post(folders_url(self.profile, "contacts")).json()["folders"]
        mail = self.client.post(folders_url(self.profile, "mail")).json()["folders"]
        self.assertEqual([f["path"] for f in contacts], ["Contacts"])
        self.assertIn("Inbox", [f["path"] for f in mail])
        self.assertIn("Sent Items", [f["path"] for f in mail])
        self.assertNotIn("Calendar", [f["path"] for f in mail])

    def test_hidden_and_system_folders_are_not_offered(self) -> None:
        # Exchange keeps hidden folders (PidTagAttributeHidden, MS-OXPROPS 2.611) in every
        # mailbox: contacts folders under Contacts (Recipient Cache…) and beside it
        # (ExternalContacts), settings folders at the top (Conversation Action Settings).
        # A user's own folder inside a hidden one is out of sight too.
        self.sim.control.call("POST", "folders", {
            "mailbox": "alice@example.com", "parent": "contacts", "name": "Partners",
            "folder_class": "IPF.Contact"})
        self.sim.control.call("POST", "folders", {
            "mailbox": "alice@example.com", "parent": "Conversation Action Settings",
            "name": "Tucked away", "folder_class": "IPF.Note"})
        self.client.force_login(self.bob)
        contacts = self.client.post(folders_url(self.profile, "contacts")).json()["folders"]
        mail = [f["path"] for f in
                self.client.post(folders_url(self.profile, "mail")).json()["folders"]]
        self.assertEqual([f["path"] for f in contacts], ["Contacts", "Contacts/Partners"])
        self.assertIn("Inbox", mail)
        self.assertFalse([path for path in mail if "Conversation Action Settings" in path
                          or "Tucked away" in path or path == "Files"], mail)

    def test_a_profile_with_its_own_credentials_lists_its_folders_with_them(self) -> None:
        connection = self.ews_connection(self.acme, name="per user",
                                         access=MailboxConnection.Access.PER_USER, username="")
        profile = self.make_profile(self.acme, self.dave, "bob@acme.example",
                                    connection=connection, mailbox_username="bob@acme.example")
        profile.set_mailbox_secret("bob-secret")
        profile.save()
        self.client.force_login(self.bob)
        response = self.client.post(folders_url(profile, "calendar"))
        self.assertEqual([f["path"] for f in response.json()["folders"]], ["Calendar"])

    def test_a_mailbox_error_comes_back_as_plain_words_in_json(self) -> None:
        connection = self.profile.connection
        connection.set_secret("wrong")
        connection.save()
        self.client.force_login(self.bob)
        response = self.client.post(folders_url(self.profile, "calendar"))
        self.assertEqual(response.status_code, 502)
        self.assertIn("Authentication failed", response.json()["error"])

    def test_an_organization_admin_cannot_list_another_organizations_folders(self) -> None:
        self.sim.control.reset_counters()
        self.client.force_login(self.bob)
        response = self.client.post(folders_url(self.foreign, "calendar"))
        self.assertEqual(response.status_code, 404)
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_listing_folders_needs_the_right_to_change_the_profile(self) -> None:
        self.client.force_login(self.bob)
        profile_admin = admin.site._registry[SyncProfile]
        with mock.patch.object(profile_admin, "has_change_permission", return_value=False):
            response = self.client.post(folders_url(self.profile, "calendar"))
        self.assertEqual(response.status_code, 403)

    def test_a_plain_user_is_sent_to_the_login_page(self) -> None:
        self.client.force_login(self.dave)
        response = self.client.post(folders_url(self.profile, "calendar"))
        self.assertEqual(response.status_code, 302)
        self.assertIn("/admin/login/", response["Location"])

    def test_a_get_is_refused_and_sends_nothing_to_the_server(self) -> None:
        self.client.force_login(self.bob)
        self.sim.control.reset_counters()
        self.assertEqual(self.client.get(folders_url(self.profile, "calendar")).status_code, 405)
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_another_site_can_neither_get_nor_post_for_the_list_without_the_csrf_token(
            self) -> None:
        client = Client(enforce_csrf_checks=True)   # a real browser: the check is not skipped
        client.force_login(self.bob)
        self.sim.control.reset_counters()
        url = folders_url(self.profile, "calendar")
        self.assertEqual(client.get(url).status_code, 405)    # an <img src>, a link
        self.assertEqual(client.post(url).status_code, 403)   # a form or fetch on another site
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_the_change_pages_csrf_token_lets_the_picker_post_for_the_list(self) -> None:
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.bob)
        page = client.get(f"/admin/profiles/syncprofile/{self.profile.pk}/change/")
        token = _inputs(page.content.decode())["csrfmiddlewaretoken"]["value"]
        response = client.post(folders_url(self.profile, "calendar"),
                               {"csrfmiddlewaretoken": token})
        self.assertEqual(response.status_code, 200)
        self.assertEqual([f["path"] for f in response.json()["folders"]],
                         ["Calendar", "Calendar/CRM"])

    def test_an_unknown_kind_of_folder_is_not_found(self) -> None:
        self.client.force_login(self.bob)
        self.assertEqual(self.client.post(folders_url(self.profile, "tasks")).status_code, 404)

    def test_the_change_page_offers_the_picker_beside_every_folder_choice(self) -> None:
        MailFolder.objects.create(profile=self.profile, folder_id="inbox", folder_path="Inbox")
        self.client.force_login(self.bob)
        page = self.client.get(f"/admin/profiles/syncprofile/{self.profile.pk}/change/")
        inputs = _inputs(page.content.decode())
        for kind, prefix, path, folder_id in (
                ("calendar", "calendarsettings-0", "Calendar", "calendar"),
                ("contacts", "contactsettings-0", "Contacts", "contacts"),
                ("mail", "mail_folders-0", "Inbox", "inbox"),
                ("mail", "mail_folders-__prefix__", None, None)):
            with self.subTest(prefix=prefix):
                shown = inputs[f"{prefix}-folder_path"]
                self.assertEqual(shown.get("value"), path)
                self.assertEqual(shown["data-folder-kind"], kind)
                self.assertEqual(shown["data-folder-list-url"], folders_url(self.profile, kind))
                self.assertIn("readonly", shown)
                stored = inputs[f"{prefix}-folder_id"]
                self.assertEqual(stored.get("value"), folder_id)
                self.assertIn("readonly", stored)
                self.assertEqual(stored["type"], "text")
        self.assertIn("profiles/folder_picker.js", page.content.decode())

    def test_a_picked_folder_is_saved_with_its_id_and_path(self) -> None:
        self.client.force_login(self.bob)
        data = profile_form_data(
            profile=self.profile, organization_id=None, user_id=self.dave.id,
            crm_user_id=self.profile.crm_user_id, connection_id=self.profile.connection_id,
            mailbox=self.profile.mailbox,
            calendar={"folder_id": self.crm_folder["id"], "folder_path": "Calendar/CRM"},
            mail_folders=[("inbox", "Inbox")])
        response = self.client.post(f"/admin/profiles/syncprofile/{self.profile.pk}/change/",
                                    data)
        self.assertEqual(response.status_code, 302, response.content[:3000])
        settings = SyncProfile.objects.get(pk=self.profile.pk).calendarsettings
        self.assertEqual((settings.folder_id, settings.folder_path),
                         (self.crm_folder["id"], "Calendar/CRM"))
        self.assertEqual(list(self.profile.mail_folders.values_list("folder_id", "folder_path")),
                         [("inbox", "Inbox")])
