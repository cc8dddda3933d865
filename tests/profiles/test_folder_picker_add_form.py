"""The "…" folder picker on the add form: no profile is saved yet, so the picker asks with the
form's connection, mailbox and credentials, under the change page's rules (POST with the CSRF
token, the administrator's organization only, the outbound address policy)."""

from __future__ import annotations

from typing import Any

from django.test import Client, override_settings

from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import MailboxConnection, SyncProfile
from tests.profiles.admin_data import profile_form_data
from tests.profiles.ewsim_cases import EwsimAdminTestCase
from tests.profiles.test_folder_picker import _inputs

ADD = "/admin/profiles/syncprofile/add/"


def add_folders_url(kind: str) -> str:
    return f"/admin/profiles/syncprofile/add-folders/{kind}/"


class AddFormFolderPickerTestCase(EwsimAdminTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connection = self.ews_connection(self.acme)
        self.foreign_connection = self.ews_connection(self.globex)
        self.crm_folder = self.sim.control.call("POST", "folders", {
            "mailbox": "alice@example.com", "parent": "calendar", "name": "CRM",
            "folder_class": "IPF.Appointment"})

    def form(self, **fields: Any) -> dict[str, Any]:
        return {"connection": self.connection.pk, "mailbox": "Alice@Example.com", **fields}

    def test_the_add_page_offers_the_picker_asking_with_the_forms_fields(self) -> None:
        self.client.force_login(self.bob)
        inputs = _inputs(self.client.get(ADD).content.decode())
        for prefix, kind in (("calendarsettings-0", "calendar"),
                             ("contactsettings-0", "contacts"),
                             ("mail_folders-__prefix__", "mail")):
            with self.subTest(prefix=prefix):
                shown = inputs[f"{prefix}-folder_path"]
                self.assertEqual(shown["data-folder-list-url"], add_folders_url(kind))
                self.assertEqual(shown["data-folder-with-form"], "1")
                self.assertIn("the folders of the mailbox, connection and credentials given "
                              "above are listed", shown["data-folder-hint"])

    def test_the_folders_of_the_mailbox_the_form_names_are_listed(self) -> None:
        self.client.force_login(self.bob)
        response = self.client.post(add_folders_url("calendar"), self.form())
        self.assertEqual(response.status_code, 200, response.content)
        folders = response.json()["folders"]
        self.assertEqual([(f["path"], f["depth"]) for f in folders],
                         [("Calendar", 0), ("Calendar/CRM", 1)])
        self.assertEqual(folders[1]["id"], self.crm_folder["id"])
        self.assertFalse(SyncProfile.objects.exists())

    def test_the_add_pages_csrf_token_lets_the_picker_post_and_nothing_else_does(self) -> None:
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.bob)
        self.sim.control.reset_counters()
        self.assertEqual(client.get(add_folders_url("calendar")).status_code, 405)
        self.assertEqual(client.post(add_folders_url("calendar"), self.form()).status_code, 403)
        self.assertEqual(self.requests_to_exchange(), 0)
        token = _inputs(client.get(ADD).content.decode())["csrfmiddlewaretoken"]["value"]
        response = client.post(add_folders_url("contacts"),
                               self.form(csrfmiddlewaretoken=token))
        self.assertEqual([f["path"] for f in response.json()["folders"]], ["Contacts"])

    def test_another_organizations_connection_is_answered_like_none_and_nothing_is_sent(
            self) -> None:
        self.client.force_login(self.bob)
        self.sim.control.reset_counters()
        for connection in (self.foreign_connection.pk, 999999, "", "x"):
            with self.subTest(connection=connection):
                response = self.client.post(add_folders_url("calendar"),
                                            self.form(connection=connection))
                self.assertEqual(response.status_code, 400)
                self.assertEqual(response.json()["error"], "Choose the connection above first.")
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_a_superuser_lists_with_any_organizations_connection(self) -> None:
        self.client.force_login(self.alice)
        response = self.client.post(add_folders_url("calendar"),
                                    self.form(connection=self.foreign_connection.pk))
        self.assertEqual(response.status_code, 200, response.content)

    def test_a_missing_mailbox_is_said_before_anything_is_sent(self) -> None:
        self.client.force_login(self.bob)
        self.sim.control.reset_counters()
        response = self.client.post(add_folders_url("calendar"), self.form(mailbox="alice"))
        self.assertEqual(response.json()["error"], "Give the mailbox's SMTP address above first.")
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_a_connection_without_an_account_lists_with_the_typed_credentials(self) -> None:
        connection = self.ews_connection(self.acme, name="per user", username="",
                                         access=MailboxConnection.Access.PER_USER)
        self.client.force_login(self.bob)
        url = add_folders_url("calendar")
        missing = self.client.post(url, self.form(connection=connection.pk,
                                                  mailbox="bob@acme.example"))
        self.assertEqual(missing.status_code, 400)
        self.assertIn("give the mailbox user name and password above first",
                      missing.json()["error"])
        wrong = self.client.post(url, self.form(
            connection=connection.pk, mailbox="bob@acme.example",
            mailbox_username="bob@acme.example", mailbox_secret="wrong"))
        self.assertEqual(wrong.status_code, 502)
        self.assertIn("Authentication failed", wrong.json()["error"])
        right = self.client.post(url, self.form(
            connection=connection.pk, mailbox="bob@acme.example",
            mailbox_username="bob@acme.example", mailbox_secret="bob-secret"))
        self.assertEqual([f["path"] for f in right.json()["folders"]], ["Calendar"])

    @override_settings(MAILBOX_ALLOWED_NETWORKS=[])
    def test_the_outbound_address_policy_applies(self) -> None:
        self.client.force_login(self.bob)
        self.sim.control.reset_counters()
        response = self.client.post(add_folders_url("calendar"), self.form())
        self.assertEqual(response.status_code, 502)
        self.assertIn("127.0.0.1", response.json()["error"])
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_a_plain_user_is_sent_to_the_login_page(self) -> None:
        self.client.force_login(self.dave)
        response = self.client.post(add_folders_url("calendar"), self.form())
        self.assertEqual(response.status_code, 302)
        self.assertIn("/admin/login/", response["Location"])

    def test_an_unknown_kind_of_folder_is_not_found(self) -> None:
        self.client.force_login(self.bob)
        self.assertEqual(self.client.post(add_folders_url("tasks"), self.form()).status_code,
                         404)

    def test_a_folder_picked_on_the_add_form_is_saved_with_the_new_profile(self) -> None:
        self.client.force_login(self.bob)
        crm_user = self.make_profile(self.acme, self.dave, "other@acme.example").crm_user
        data = profile_form_data(
            organization_id=None, user_id=self.dave.id, crm_user_id=crm_user.pk,
            connection_id=self.connection.pk, mailbox="alice@example.com",
            calendar={"folder_id": self.crm_folder["id"], "folder_path": "Calendar/CRM"})
        response = self.client.post(ADD, data)
        self.assertEqual(response.status_code, 302, response.content[:3000])
        settings = SyncProfile.objects.get(mailbox="alice@example.com").calendarsettings
        self.assertEqual((settings.folder_id, settings.folder_path),
                         (self.crm_folder["id"], "Calendar/CRM"))
