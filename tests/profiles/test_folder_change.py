"""Changing a synced agenda's folder in the admin asks for a confirmation and says what will
happen; confirmed, the next run moves the synced items, and the user's mailbox holds each CRM
person once (against ewsim, end to end)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.urls import reverse

from crm.models import Person
from engine.models import Link, Run
from engine.sync import sync
from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import MailboxConnection, SyncProfile
from tests.engine.sync_helpers import contacts_by_folder
from tests.profiles.admin_data import profile_form_data
from tests.profiles.ewsim_cases import EwsimAdminTestCase
from tests.profiles.test_folder_picker import _inputs

CONFIRM = "contactsettings-0-confirm_folder_change"


class FolderChangeAdminTestCase(EwsimAdminTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.profile = self.make_profile(self.acme, self.dave, "alice@example.com",
                                         connection=self.ews_connection(self.acme),
                                         sync_calendar=False)
        settings = self.profile.contactsettings
        settings.scope = "organization"
        settings.save()
        for first, email in (("Eva", "eva@acme.cz"), ("Jan", "jan@acme.cz")):
            Person.objects.create(organization=self.acme, first_name=first, last_name="Nová",
                                  email1=email)
        self.new_folder = self.sim.control.call("POST", "folders", {
            "mailbox": "alice@example.com", "parent": "contacts", "name": "CRM",
            "folder_class": "IPF.Contact"})
        self.client.force_login(self.bob)

    @property
    def change_url(self) -> str:
        return reverse("admin:profiles_syncprofile_change", args=[self.profile.pk])

    def _post(self, folder: dict[str, str] | None = None, **extra: Any) -> Any:
        profile = SyncProfile.objects.get(pk=self.profile.pk)
        contacts: dict[str, Any] = {"scope": "organization"}
        if folder is not None:
            contacts.update(folder_id=folder["id"], folder_path="Contacts/CRM")
        data = profile_form_data(
            profile=profile, organization_id=None, user_id=self.dave.id,
            crm_user_id=profile.crm_user_id, connection_id=profile.connection_id,
            mailbox=profile.mailbox, contacts=contacts)
        data.pop("sync_calendar")
        data.update(extra)
        return self.client.post(self.change_url, data)

    def _sync(self) -> Run:
        run = sync(SyncProfile.objects.get(pk=self.profile.pk), "contacts")
        self.assertEqual(run.status, Run.Status.SUCCESS, run.message)
        return run

    def _stored_folder(self) -> tuple[str, str]:
        settings = SyncProfile.objects.get(pk=self.profile.pk).contactsettings
        return settings.folder_id, settings.folder_path

    def test_before_the_first_sync_the_folder_changes_without_a_question(self) -> None:
        self.assertNotIn(CONFIRM, _inputs(self.client.get(self.change_url).content.decode()))
        response = self._post(self.new_folder)
        self.assertEqual(response.status_code, 302, response.content[:3000])
        self.assertEqual(self._stored_folder(), (self.new_folder["id"], "Contacts/CRM"))

    def test_after_the_first_sync_the_page_says_what_a_change_will_do(self) -> None:
        self._sync()
        page = self.client.get(self.change_url).content.decode()
        self.assertIn(CONFIRM, _inputs(page))
        self.assertIn("I understand: the synced items move to the new folder", page)
        self.assertIn("This agenda has synced with “Contacts”. If you choose another folder, "
                      "the next run moves the items linked to CRM records from “Contacts” "
                      "into it", page)

    def test_an_unconfirmed_change_is_refused_and_the_old_folder_kept(self) -> None:
        self._sync()
        response = self._post(self.new_folder)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "The folder changes from “Contacts” to “Contacts/CRM”: "
                                      "tick “I understand” to move the synced items there at "
                                      "the next run, or choose “Contacts” again.")
        self.assertEqual(self._stored_folder(), ("contacts", "Contacts"))

    def test_other_changes_need_no_confirmation(self) -> None:
        self._sync()
        response = self._post(interval_minutes=30)
        self.assertEqual(response.status_code, 302, response.content[:3000])

    def test_a_confirmed_change_moves_the_synced_contacts_each_once(self) -> None:
        self._sync()
        self.assertEqual(contacts_by_folder(self.sim)["Contacts"],
                         Counter({"eva@acme.cz": 1, "jan@acme.cz": 1}))

        response = self._post(self.new_folder, **{CONFIRM: "on"})
        self.assertEqual(response.status_code, 302, response.content[:3000])
        self.assertEqual(self._stored_folder(), (self.new_folder["id"], "Contacts/CRM"))
        run = self._sync()

        self.assertEqual((run.remote_created, run.remote_updated), (0, 2))
        self.assertEqual(contacts_by_folder(self.sim), {
            "Contacts": Counter(),
            "Contacts/CRM": Counter({"eva@acme.cz": 1, "jan@acme.cz": 1})})
        self.assertEqual(Link.objects.filter(profile=self.profile).count(), 2)

    def test_a_graph_connections_synced_folder_is_locked_saying_why(self) -> None:
        connection = self.profile.connection
        connection.kind = MailboxConnection.Kind.GRAPH
        connection.save()
        Link.objects.create(profile=self.profile, agenda="contacts", crm_key="person:1",
                            remote_id="AAMk-1")
        response = self._post(self.new_folder, **{CONFIRM: "on"})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "this connection (Microsoft Graph) cannot move contacts "
                                      "or events between folders")
        self.assertEqual(self._stored_folder(), ("contacts", "Contacts"))
