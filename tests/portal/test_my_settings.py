""""My sync settings": a user changes the options of their own profile that the organization's
administrator made theirs, with the admin's checks, and every change is in the audit log.

The forms are posted as a browser would: the values the page shows, read from its HTML,
with the user's changes on top.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import translation

from engine.models import FolderState
from profiles.models import AuditEntry, MailFolder, Organization, SyncProfile
from profiles.models.self_service import UserOption
from tests.portal.base import PortalTestCase
from tests.profiles.ewsim_cases import EwsimAdminTestCase

PAGE = "/my-settings/"


class _FormReader(HTMLParser):
    """The fields a browser would submit with the form posting to `action`."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action
        self.inside = False
        self.select: str | None = None
        self.data: dict[str, Any] = {}
        self.names: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("action") == self.action
        if not self.inside or (not a.get("name") and tag != "option"):
            return
        if tag == "input":
            self.names.add(a["name"])
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.data[a["name"]] = a.get("value") or "on"
            else:
                self.data[a["name"]] = a.get("value", "")
        elif tag == "select":
            self.select = a["name"]
            self.names.add(a["name"])
        elif tag == "option" and self.select and "selected" in a:
            self.data[self.select] = a["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None


def read_form(html: str, action: str) -> _FormReader:
    reader = _FormReader(action)
    reader.feed(html)
    return reader


def allow(organization: Organization, *options: UserOption) -> None:
    organization.self_service = [option.value for option in options]
    organization.save()


class MySettingsTestCase(PortalTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.action = reverse("portal:save_own_settings", args=[self.daves.pk])
        self.prefix = f"p{self.daves.pk}"

    def _page_form(self, user: Any = None) -> _FormReader:
        self.sign_in(user or self.dave)
        page = self.client.get(PAGE)
        self.assertEqual(page.status_code, 200)
        return read_form(page.content.decode(), self.action)

    def _post(self, changes: dict[str, Any], drop: tuple[str, ...] = ()) -> Any:
        data = self._page_form().data
        data.update({f"{self.prefix}-{name}": value for name, value in changes.items()})
        for name in drop:
            data.pop(f"{self.prefix}-{name}", None)
        return self.client.post(self.action, data)

    # --- what the administrator allows -------------------------------------------------
    def test_by_default_nothing_is_the_users_and_the_menu_does_not_offer_the_page(self) -> None:
        self.assertEqual(Organization.objects.create(name="New").self_service, [])
        self.sign_in(self.dave)
        dashboard = self.client.get(reverse("portal:dashboard"))
        self.assertNotContains(dashboard, "My sync settings")
        page = self.client.get(PAGE)
        self.assertContains(page, "None of this profile's settings is yours to change")
        self.assertEqual(read_form(page.content.decode(), self.action).names, set())
        response = self.client.post(self.action, {f"{self.prefix}-calendarsettings-days_past":
                                                  "99"})
        self.assertEqual(response.status_code, 404)
        self.daves.calendarsettings.refresh_from_db()
        self.assertEqual(self.daves.calendarsettings.days_past, 14)

    def test_the_menu_offers_the_page_once_something_is_the_users(self) -> None:
        allow(self.acme, UserOption.PRIVATE_EVENTS)
        self.sign_in(self.dave)
        dashboard = self.client.get(reverse("portal:dashboard"))
        self.assertContains(dashboard, f'href="{PAGE}"')
        self.assertContains(dashboard, "My sync settings")

    def test_the_page_shows_only_the_allowed_options(self) -> None:
        allow(self.acme, UserOption.DIRECTIONS, UserOption.CALENDAR_WINDOW)
        names = self._page_form().names
        self.assertEqual(names, {
            "csrfmiddlewaretoken",
            f"{self.prefix}-calendarsettings-direction",
            f"{self.prefix}-calendarsettings-days_past",
            f"{self.prefix}-calendarsettings-days_future",
            f"{self.prefix}-contactsettings-direction",
        })

    def test_every_option_has_its_fields(self) -> None:
        allow(self.acme, *UserOption)
        names = {name.removeprefix(f"{self.prefix}-") for name in self._page_form().names}
        for name in ("syncprofile-sync_calendar", "syncprofile-sync_contacts",
                     "syncprofile-import_mail", "calendarsettings-direction",
                     "calendarsettings-days_past", "calendarsettings-days_future",
                     "calendarsettings-folder_path", "calendarsettings-folder_id",
                     "calendarsettings-skip_private", "contactsettings-direction",
                     "contactsettings-folder_path", "contactsettings-folder_id",
                     "mailsettings-received_within_days", "folders-0-folder_path",
                     "folders-0-folder_id", "folders-TOTAL_FORMS"):
            self.assertIn(name, names)
        self.assertNotIn("calendarsettings-scope", names)
        self.assertNotIn("mailsettings-save_attachments", names)

    def test_an_administrator_marks_the_options_on_the_organization_page(self) -> None:
        self.client.force_login(self.bob)
        url = f"/admin/profiles/organization/{self.acme.pk}/change/"
        page = self.client.get(url)
        self.assertContains(page, 'type="checkbox" name="self_service" value="calendar_window"')
        response = self.client.post(url, {"name": "Acme", "alert_emails": "",
                                          "self_service": ["calendar_window", "agendas"]})
        self.assertEqual(response.status_code, 302)
        self.acme.refresh_from_db()
        self.assertEqual(self.acme.user_options(), {"calendar_window", "agendas"})

    def test_an_unknown_option_is_refused_by_the_model(self) -> None:
        self.acme.self_service = ["calendar_window", "connection"]
        with self.assertRaises(ValidationError) as raised:
            self.acme.full_clean()
        self.assertIn("self_service", raised.exception.error_dict)

    def test_the_options_are_labelled_in_the_users_language(self) -> None:
        allow(self.acme, UserOption.CALENDAR_WINDOW, UserOption.PRIVATE_EVENTS)
        self.sign_in(self.dave)
        # A Czech request leaves Czech active in this thread for the tests after it.
        self.addCleanup(translation.activate, settings.LANGUAGE_CODE)
        page = self.client.get(PAGE, headers={"accept-language": "cs"})
        self.assertContains(page, '<html lang="cs">')
        self.assertContains(page, "Dnů do minulosti")
        self.assertContains(page, "Nesynchronizovat privátní události")
        self.assertNotContains(page, "Days into the past")

    # --- whose profile ---------------------------------------------------------------
    def test_only_the_users_own_profiles_are_on_the_page(self) -> None:
        allow(self.acme, UserOption.CALENDAR_WINDOW)
        self.sign_in(self.dave)
        page = self.client.get(PAGE)
        self.assertContains(page, "dave@acme.example")
        self.assertNotContains(page, "eve@acme.example")

    def test_another_users_profile_is_not_found(self) -> None:
        allow(self.acme, UserOption.CALENDAR_WINDOW)
        allow(self.globex, UserOption.CALENDAR_WINDOW)
        for user, profile in ((self.dave, self.eves), (self.dave, self.charlies),
                              (self.bob, self.daves), (self.alice, self.daves)):
            with self.subTest(user=user.username, profile=profile.mailbox):
                self.sign_in(user)
                response = self.client.post(
                    reverse("portal:save_own_settings", args=[profile.pk]),
                    {f"p{profile.pk}-calendarsettings-days_past": "60",
                     f"p{profile.pk}-calendarsettings-days_future": "60"})
                self.assertEqual(response.status_code, 404)
                profile.calendarsettings.refresh_from_db()
                self.assertEqual(profile.calendarsettings.days_past, 14)

    def test_signed_out_the_page_asks_to_sign_in(self) -> None:
        allow(self.acme, UserOption.CALENDAR_WINDOW)
        response = self.client.post(self.action, {})
        self.assertEqual(response.status_code, 302)
        self.assertIn("/login/", response["Location"])

    # --- saving -------------------------------------------------------------------------
    def test_the_allowed_options_are_saved(self) -> None:
        allow(self.acme, UserOption.AGENDAS, UserOption.DIRECTIONS,
              UserOption.CALENDAR_WINDOW, UserOption.PRIVATE_EVENTS, UserOption.MAIL_IMPORT)
        response = self._post({
            "syncprofile-import_mail": "on", "calendarsettings-direction": "export",
            "calendarsettings-days_past": "0", "calendarsettings-days_future": "90",
            "calendarsettings-skip_private": "on", "contactsettings-direction": "import",
            "mailsettings-received_within_days": "7"}, drop=("syncprofile-sync_contacts",))
        self.assertRedirects(response, f"{PAGE}#profile-{self.daves.pk}",
                             fetch_redirect_response=False)
        profile = SyncProfile.objects.get(pk=self.daves.pk)
        self.assertEqual((profile.sync_calendar, profile.sync_contacts, profile.import_mail),
                         (True, False, True))
        calendar = profile.calendarsettings
        self.assertEqual((calendar.direction, calendar.days_past, calendar.days_future,
                          calendar.skip_private), ("export", 0, 90, True))
        self.assertEqual(profile.contactsettings.direction, "import")
        self.assertEqual(profile.mailsettings.received_within_days, 7)
        page = self.client.get(PAGE)
        self.assertContains(page, "The settings of dave@acme.example are saved")

    def test_posted_fields_that_are_not_allowed_are_ignored(self) -> None:
        allow(self.acme, UserOption.CALENDAR_WINDOW)
        other_connection = self.make_connection(self.acme, name="elsewhere")
        response = self._post({
            "calendarsettings-days_past": "30",
            "calendarsettings-direction": "export",          # directions: not allowed
            "calendarsettings-skip_private": "on",           # private events: not allowed
            "calendarsettings-folder_id": "AAMk-other",      # folders: not allowed
            "calendarsettings-scope": "paired",              # never the user's
            "syncprofile-sync_calendar": "",                 # agendas: not allowed
            "syncprofile-connection": str(other_connection.pk),
            "syncprofile-mailbox": "eve@acme.example",
            "syncprofile-user": str(self.eve.pk),
            "mailsettings-save_attachments": "on",
            "folders-TOTAL_FORMS": "1", "folders-INITIAL_FORMS": "0",
            "folders-0-folder_id": "inbox", "folders-0-folder_path": "Inbox",
        })
        self.assertEqual(response.status_code, 302)
        profile = SyncProfile.objects.get(pk=self.daves.pk)
        calendar = profile.calendarsettings
        self.assertEqual(calendar.days_past, 30)
        self.assertEqual((calendar.direction, calendar.skip_private, calendar.folder_id,
                          calendar.scope), ("two_way", False, "calendar", "all"))
        self.assertEqual((profile.sync_calendar, profile.connection_id, profile.mailbox,
                          profile.user_id),
                         (True, self.daves.connection_id, "dave@acme.example", self.dave.pk))
        self.assertFalse(profile.mailsettings.save_attachments)
        self.assertFalse(MailFolder.objects.exists())
        changed = AuditEntry.objects.filter(action="change")
        self.assertEqual([entry.changes for entry in changed],
                         [{"days_past": {"from": 14, "to": 30}}])

    def test_values_the_admin_refuses_are_refused_and_nothing_is_saved(self) -> None:
        allow(self.acme, UserOption.DIRECTIONS, UserOption.CALENDAR_WINDOW,
              UserOption.MAIL_IMPORT)
        for changes, error in (
                ({"calendarsettings-days_past": "5000"},
                 "Ensure this value is less than or equal to 3650."),
                ({"calendarsettings-days_future": "-1"},
                 "Ensure this value is greater than or equal to 0."),
                ({"calendarsettings-days_past": "many"}, "Enter a whole number."),
                ({"mailsettings-received_within_days": "4000"},
                 "Ensure this value is less than or equal to 3650."),
                ({"contactsettings-direction": "sideways"}, "Select a valid choice.")):
            with self.subTest(changes=changes):
                response = self._post({"calendarsettings-direction": "import", **changes})
                self.assertEqual(response.status_code, 200)
                self.assertContains(response, "Nothing was saved: correct the errors below.")
                self.assertContains(response, error)
                self.daves.calendarsettings.refresh_from_db()
                self.assertEqual(self.daves.calendarsettings.direction, "two_way")
        self.assertFalse(AuditEntry.objects.filter(action="change").exists())

    def test_a_problem_only_an_administrator_can_fix_is_shown_not_crashed_on(self) -> None:
        # A stored profile the admin would refuse too: its connection is another
        # organization's. The user is told; nothing of theirs is saved with it.
        allow(self.acme, UserOption.AGENDAS)
        SyncProfile.objects.filter(pk=self.daves.pk).update(
            connection=self.charlies.connection)
        response = self._post({"syncprofile-import_mail": "on"})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "This connection belongs to another organization.")
        self.assertFalse(SyncProfile.objects.get(pk=self.daves.pk).import_mail)

    # --- the audit log ---------------------------------------------------------------------
    def test_every_change_is_in_the_audit_log_under_the_users_name(self) -> None:
        allow(self.acme, UserOption.AGENDAS, UserOption.CALENDAR_WINDOW)
        self._post({"calendarsettings-days_past": "30", "calendarsettings-days_future": "60",
                    "syncprofile-import_mail": "on"})
        entries = {entry.object_type: entry for entry in
                   AuditEntry.objects.filter(action=AuditEntry.Action.CHANGE)}
        self.assertEqual(set(entries), {"sync profile", "calendar settings"})
        calendar, profile = entries["calendar settings"], entries["sync profile"]
        self.assertEqual(calendar.changes, {"days_past": {"from": 14, "to": 30},
                                            "days_future": {"from": 31, "to": 60}})
        self.assertEqual(profile.changes, {"import_mail": {"from": False, "to": True}})
        for entry in entries.values():
            self.assertEqual((entry.actor_id, entry.actor_name, entry.organization_id),
                             (self.dave.pk, "dave", self.acme.pk))
            self.assertIn("dave@acme.example", entry.object_repr)

        self.client.force_login(self.bob)         # Acme's administrator reads it
        log = self.client.get("/admin/profiles/auditentry/")
        self.assertContains(log, "dave@acme.example: calendar settings")
        detail = self.client.get(f"/admin/profiles/auditentry/{calendar.pk}/change/")
        self.assertContains(detail, "14 → 30")
        self.client.force_login(self.charlie)     # Globex's does not
        self.assertNotContains(self.client.get("/admin/profiles/auditentry/"),
                               "dave@acme.example")

    def test_saving_without_a_change_writes_nothing_to_the_log(self) -> None:
        allow(self.acme, *UserOption)
        response = self._post({})
        self.assertEqual(response.status_code, 302)
        self.assertFalse(AuditEntry.objects.filter(action="change").exists())


class MySettingsFoldersTestCase(EwsimAdminTestCase):
    """Folders are chosen from the user's own mailbox, listed live by ewsim."""

    def setUp(self) -> None:
        super().setUp()
        self.profile = self.make_profile(self.acme, self.dave, "alice@example.com",
                                         connection=self.ews_connection(self.acme))
        self.bobs = self.make_profile(self.acme, self.bob, "bob@acme.example",
                                      connection=self.ews_connection(self.acme, name="bob's"))
        self.crm_folder = self.sim.control.call("POST", "folders", {
            "mailbox": "alice@example.com", "parent": "calendar", "name": "CRM",
            "folder_class": "IPF.Appointment"})
        self.action = reverse("portal:save_own_settings", args=[self.profile.pk])
        self.prefix = f"p{self.profile.pk}"
        allow(self.acme, UserOption.FOLDERS, UserOption.MAIL_IMPORT)
        self.client.force_login(self.dave)

    def _folders(self, kind: str, profile: SyncProfile | None = None) -> Any:
        return self.client.post(reverse("portal:own_folders",
                                        args=[(profile or self.profile).pk, kind]))

    def _data(self, changes: dict[str, Any]) -> dict[str, Any]:
        data = read_form(self.client.get(PAGE).content.decode(), self.action).data
        data.update({f"{self.prefix}-{name}": value for name, value in changes.items()})
        return data

    def test_the_picker_lists_the_users_own_mailboxes_folders(self) -> None:
        response = self._folders("calendar")
        self.assertEqual(response.status_code, 200)
        self.assertEqual([f["path"] for f in response.json()["folders"]],
                         ["Calendar", "Calendar/CRM"])
        self.assertIn("Inbox", [f["path"] for f in self._folders("mail").json()["folders"]])

    def test_the_page_offers_the_picker_for_each_folder(self) -> None:
        page = self.client.get(PAGE)
        for kind in ("calendar", "contacts", "mail"):
            self.assertContains(page, f'data-folder-kind="{kind}"')
            self.assertContains(page, f'data-folder-list-url="/my-settings/{self.profile.pk}'
                                      f'/folders/{kind}/"')
        self.assertContains(page, 'src="/static/profiles/folder_picker.js"')
        # Not synced yet: a folder changes without a question.
        self.assertNotContains(page, "confirm_folder_change")

    def test_a_synced_folder_changes_only_once_the_user_confirms_the_move(self) -> None:
        # As in the admin (console.folder_change): the next run moves the synced items.
        FolderState.objects.create(profile=self.profile, agenda="calendar",
                                   folder_id="calendar", remote_state="synced-once")
        page = self.client.get(PAGE)
        self.assertContains(page, "the next run moves the items linked to CRM records")
        change = {"calendarsettings-folder_id": self.crm_folder["id"],
                  "calendarsettings-folder_path": "Calendar/CRM"}
        refused = self.client.post(self.action, self._data(change))
        self.assertEqual(refused.status_code, 200)
        self.assertContains(refused, "tick “I understand”")
        calendar = SyncProfile.objects.get(pk=self.profile.pk).calendarsettings
        self.assertEqual(calendar.folder_id, "calendar")
        confirmed = self.client.post(self.action, self._data(
            {**change, "calendarsettings-confirm_folder_change": "on"}))
        self.assertEqual(confirmed.status_code, 302)
        calendar = SyncProfile.objects.get(pk=self.profile.pk).calendarsettings
        self.assertEqual(calendar.folder_id, self.crm_folder["id"])

    def test_another_users_mailbox_or_a_kind_not_allowed_is_not_listed(self) -> None:
        self.sim.control.reset_counters()
        self.assertEqual(self._folders("calendar", self.bobs).status_code, 404)
        self.assertEqual(self._folders("tasks").status_code, 404)
        allow(self.acme, UserOption.CALENDAR_WINDOW)
        self.assertEqual(self._folders("calendar").status_code, 404)
        self.assertEqual(self._folders("mail").status_code, 404)
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_listing_is_a_post_with_the_pages_csrf_token(self) -> None:
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.dave)
        url = reverse("portal:own_folders", args=[self.profile.pk, "calendar"])
        self.sim.control.reset_counters()
        self.assertEqual(client.get(url).status_code, 405)
        self.assertEqual(client.post(url).status_code, 403)
        self.assertEqual(self.requests_to_exchange(), 0)
        token = read_form(client.get(PAGE).content.decode(), self.action).data[
            "csrfmiddlewaretoken"]
        response = client.post(url, {"csrfmiddlewaretoken": token})
        self.assertEqual(response.status_code, 200)

    def test_a_folder_chosen_from_the_mailbox_is_saved_with_the_mailboxes_path(self) -> None:
        response = self.client.post(self.action, self._data({
            "calendarsettings-folder_id": self.crm_folder["id"],
            "calendarsettings-folder_path": "Whatever the browser said"}))
        self.assertEqual(response.status_code, 302)
        calendar = SyncProfile.objects.get(pk=self.profile.pk).calendarsettings
        self.assertEqual((calendar.folder_id, calendar.folder_path),
                         (self.crm_folder["id"], "Calendar/CRM"))
        entry = AuditEntry.objects.get(action="change", object_type="calendar settings")
        self.assertEqual(entry.changes["folder_path"], {"from": "Calendar",
                                                        "to": "Calendar/CRM"})
        self.assertEqual(entry.actor_name, "dave")

    def test_a_folder_id_that_is_not_of_the_users_mailbox_is_refused(self) -> None:
        bobs_calendar = self.sim.control.call("POST", "folders", {
            "mailbox": "bob@acme.example", "parent": "calendar", "name": "Bob's",
            "folder_class": "IPF.Appointment"})
        for folder_id in (bobs_calendar["id"], "AAMk-made-up", self.crm_folder["id"]):
            kind = "contactsettings" if folder_id == self.crm_folder["id"] else "calendarsettings"
            with self.subTest(folder_id=folder_id, kind=kind):
                response = self.client.post(self.action, self._data({
                    f"{kind}-folder_id": folder_id, f"{kind}-folder_path": "Contacts"}))
                self.assertEqual(response.status_code, 200)
                self.assertContains(response, "This is not a folder of your mailbox")
        calendar = SyncProfile.objects.get(pk=self.profile.pk).calendarsettings
        self.assertEqual(calendar.folder_id, "calendar")
        self.assertEqual(SyncProfile.objects.get(pk=self.profile.pk).contactsettings.folder_id,
                         "contacts")

    def test_mail_folders_are_added_and_removed(self) -> None:
        inbox = next(f for f in self._folders("mail").json()["folders"] if f["path"] == "Inbox")
        data = self._data({"folders-0-folder_id": inbox["id"],
                           "folders-0-folder_path": "Inbox"})
        self.assertEqual(self.client.post(self.action, data).status_code, 302)
        chosen = MailFolder.objects.get(profile=self.profile)
        self.assertEqual((chosen.folder_id, chosen.folder_path), (inbox["id"], "Inbox"))
        self.assertEqual(AuditEntry.objects.get(object_type="mail folder",
                                                action="create").actor_name, "dave")

        data = self._data({"folders-0-DELETE": "on"})
        self.assertEqual(self.client.post(self.action, data).status_code, 302)
        self.assertFalse(MailFolder.objects.filter(profile=self.profile).exists())
        self.assertEqual(AuditEntry.objects.get(object_type="mail folder",
                                                action="delete").actor_name, "dave")

    def test_an_unreachable_mailbox_is_said_and_the_folder_kept(self) -> None:
        connection = self.profile.connection
        connection.set_secret("wrong")
        connection.save()
        response = self.client.post(self.action, self._data({
            "calendarsettings-folder_id": self.crm_folder["id"]}))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Your mailbox&#x27;s folders could not be read")
        calendar = SyncProfile.objects.get(pk=self.profile.pk).calendarsettings
        self.assertEqual(calendar.folder_id, "calendar")
