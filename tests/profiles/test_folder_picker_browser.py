"""The folder picker and the "Test connection" button in a real browser: headless Chromium on
the real profile change page, where both must POST with the page's CSRF token (a GET is refused).

Needs the Debian packages `chromium` and `chromium-driver` (CI installs them); without them
the test is skipped, saying so. Screenshots of the profile's setup are saved under
$ADMIN_SCREENSHOT_DIR (default: <tmp>/admin-screenshots).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import Client

from crm.models import CrmUser
from engine.models import Job, Link
from ewsim.testing import SimHandle, ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import MailboxConnection, Organization, SyncProfile

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)
try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError:  # pragma: no cover (the test extras install it)
    webdriver = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(webdriver is None, reason="selenium is not installed: "
                       "pip install -e '.[test]'"),
    pytest.mark.skipif(not (CHROMEDRIVER and CHROMIUM), reason="headless Chromium is not "
                       "installed: apt-get install chromium chromium-driver"),
]

WAIT = 15   # seconds; the page and ewsim answer in well under one
SCREENSHOTS = Path(os.environ.get("ADMIN_SCREENSHOT_DIR")
                   or Path(tempfile.gettempdir()) / "admin-screenshots")


class AdminBrowserTestCase(StaticLiveServerTestCase):
    """Headless Chromium on the live server, ewsim beside it, and a profile to open."""

    sim: SimHandle

    @pytest.fixture(autouse=True)
    def _browser(self, ewsim: SimHandle) -> Iterator[None]:  # noqa: F811
        self.sim = ewsim
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # Root in a container has no user namespaces for Chromium's sandbox.
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1400,1000"):
            options.add_argument(argument)
        self.browser = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER),
                                        options=options)
        yield
        self.browser.quit()

    def _sign_in(self, user: User) -> None:
        client = Client()
        client.force_login(user)
        self.browser.get(f"{self.live_server_url}/admin/login/")
        self.browser.add_cookie({"name": settings.SESSION_COOKIE_NAME,
                                 "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                                 "path": "/"})

    def _profile(self) -> SyncProfile:
        """Alice's profile on ewsim with its own credentials; Alice signed in (a superuser)."""
        organization = Organization.objects.create(name="Acme")
        alice = User.objects.create_superuser("alice", "alice@example.org", "unused-password")
        connection = MailboxConnection(
            organization=organization, name="ewsim", ews_url=self.sim.url,
            auth_type=MailboxConnection.Auth.BASIC,
            access=MailboxConnection.Access.PER_USER)
        connection.save()
        profile = SyncProfile(
            organization=organization, user=alice, mailbox=self.sim.user,
            crm_user=CrmUser.objects.create(organization=organization, name="Alice",
                                            login="alice"),
            connection=connection, mailbox_username=self.sim.user)
        profile.set_mailbox_secret(self.sim.password)
        profile.save()
        self._sign_in(alice)
        return profile


class FolderPickerBrowserTests(AdminBrowserTestCase):
    def test_choosing_a_calendar_folder_with_the_picker_saves_its_id_and_path(self) -> None:
        crm_folder = self.sim.control.call("POST", "folders", {
            "mailbox": self.sim.user, "parent": "calendar", "name": "CRM",
            "folder_class": "IPF.Appointment"})
        profile = self._profile()
        browser = self.browser
        browser.get(f"{self.live_server_url}/admin/profiles/syncprofile/{profile.pk}/change/")
        wait = WebDriverWait(browser, WAIT)
        path_input = browser.find_element(By.ID, "id_calendarsettings-0-folder_path")
        self.assertEqual(path_input.get_attribute("value"), "Calendar")
        browser.find_element(
            By.CSS_SELECTOR, "#id_calendarsettings-0-folder_path + .folder-picker-button").click()
        choice = wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR,
            'dialog[open] .folder-picker-choice[data-folder-path="Calendar/CRM"]')))
        self.assertEqual(choice.text, "CRM")
        choice.click()
        wait.until(expected_conditions.invisibility_of_element_located(
            (By.CSS_SELECTOR, "dialog.folder-picker-dialog")))
        self.assertEqual(path_input.get_attribute("value"), "Calendar/CRM")
        self.assertEqual(browser.find_element(By.ID, "id_calendarsettings-0-folder_id")
                         .get_attribute("value"), crm_folder["id"])

        browser.find_element(By.NAME, "_continue").click()
        wait.until(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".messagelist .success")))
        stored = SyncProfile.objects.get(pk=profile.pk).calendarsettings
        self.assertEqual((stored.folder_id, stored.folder_path),
                         (crm_folder["id"], "Calendar/CRM"))

    def test_the_test_connection_button_posts_and_shows_the_answer_on_the_change_page(
            self) -> None:
        profile = self._profile()
        browser = self.browser
        change = f"{self.live_server_url}/admin/profiles/syncprofile/{profile.pk}/change/"
        browser.get(change)
        browser.find_element(By.CSS_SELECTOR, ".object-tools button.test-connection").click()
        success = WebDriverWait(browser, WAIT).until(expected_conditions
            .presence_of_element_located((By.CSS_SELECTOR, ".messagelist .success")))
        self.assertIn("The connection works", success.text)
        self.assertEqual(browser.current_url, change)


class ProfileSetupBrowserTests(AdminBrowserTestCase):
    """A new profile set up on the add page, and a synced profile's folder changed: the
    picker, the unticked "active" and the confirmation, as an administrator meets them."""

    def _shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    def _pick(self, prefix: str, path: str, shot: str = "") -> None:
        wait = WebDriverWait(self.browser, WAIT)
        self.browser.find_element(
            By.CSS_SELECTOR, f"#id_{prefix}-folder_path + .folder-picker-button").click()
        choice = wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR,
            f'dialog[open] .folder-picker-choice[data-folder-path="{path}"]')))
        if shot:
            self._shot(shot)
        choice.click()
        wait.until(expected_conditions.invisibility_of_element_located(
            (By.CSS_SELECTOR, "dialog.folder-picker-dialog")))

    def test_a_new_profile_gets_its_folder_from_the_picker_and_is_saved_inactive(self) -> None:
        crm_folder = self.sim.control.call("POST", "folders", {
            "mailbox": self.sim.user, "parent": "calendar", "name": "CRM",
            "folder_class": "IPF.Appointment"})
        template = self._profile()   # the organization, the connection, Alice signed in
        crm_user = CrmUser.objects.create(organization=template.organization, name="Bob",
                                          login="bob")
        mailbox = template.mailbox
        template.delete()
        browser = self.browser
        browser.get(f"{self.live_server_url}/admin/profiles/syncprofile/add/")
        active = browser.find_element(By.ID, "id_active")
        self.assertFalse(active.is_selected())
        Select(browser.find_element(By.ID, "id_organization")).select_by_visible_text("Acme")
        browser.find_element(By.ID, "id_mailbox").send_keys(mailbox)
        Select(browser.find_element(By.ID, "id_user")).select_by_visible_text("alice")
        Select(browser.find_element(By.ID, "id_crm_user")).select_by_visible_text(str(crm_user))
        Select(browser.find_element(By.ID, "id_connection")).select_by_index(1)
        browser.find_element(By.ID, "id_mailbox_username").send_keys(mailbox)
        browser.find_element(By.ID, "id_mailbox_secret").send_keys(self.sim.password)

        self._pick("calendarsettings-0", "Calendar/CRM", shot="profile-add-folder-picker")
        self.assertEqual(browser.find_element(By.ID, "id_calendarsettings-0-folder_id")
                         .get_attribute("value"), crm_folder["id"])
        browser.execute_script("arguments[0].scrollIntoView(); window.scrollBy(0, -200)",
                               active)
        self._shot("profile-add-inactive-with-picked-folder")
        browser.find_element(By.NAME, "_continue").click()
        WebDriverWait(browser, WAIT).until(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".messagelist .success")))
        profile = SyncProfile.objects.get(mailbox=mailbox)
        self.assertFalse(profile.active)
        self.assertEqual((profile.calendarsettings.folder_id, profile.calendarsettings.folder_path),
                         (crm_folder["id"], "Calendar/CRM"))
        self.assertFalse(Job.objects.filter(profile=profile).exists())

    def test_changing_a_synced_folder_asks_for_the_confirmation_first(self) -> None:
        crm_folder = self.sim.control.call("POST", "folders", {
            "mailbox": self.sim.user, "parent": "contacts", "name": "CRM",
            "folder_class": "IPF.Contact"})
        profile = self._profile()
        Link.objects.create(profile=profile, agenda="contacts", crm_key="1", remote_id="AAMk")
        browser = self.browser
        browser.get(f"{self.live_server_url}/admin/profiles/syncprofile/{profile.pk}/change/")
        self._pick("contactsettings-0", "Contacts/CRM")
        browser.find_element(By.NAME, "_continue").click()
        wait = WebDriverWait(browser, WAIT)
        error = wait.until(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".field-confirm_folder_change .errorlist")))
        self.assertIn("The folder changes from “Contacts” to “Contacts/CRM”", error.text)
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(
            By.ID, "id_contactsettings-0-folder_path"))
        self._shot("profile-folder-change-asks-for-confirmation")
        self.assertEqual(SyncProfile.objects.get(pk=profile.pk).contactsettings.folder_id,
                         "contacts")

        checkbox = browser.find_element(By.ID, "id_contactsettings-0-confirm_folder_change")
        browser.execute_script("arguments[0].scrollIntoView()", checkbox)
        checkbox.click()
        browser.find_element(By.NAME, "_continue").click()
        wait.until(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".messagelist .success")))
        self.assertEqual(SyncProfile.objects.get(pk=profile.pk).contactsettings.folder_id,
                         crm_folder["id"])
