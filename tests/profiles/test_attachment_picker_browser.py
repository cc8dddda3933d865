"""The attachment directory's "…" picker in a real browser: an organization administrator
browses the approved root, creates a folder, is refused a hostile name, chooses the folder
and saves the profile.

Screenshots are saved under $PORTAL_SCREENSHOT_DIR (default: <tmp>/portal-screenshots).
Needs the Debian packages `chromium` and `chromium-driver`; without them the test is skipped.
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
from profiles.models import MailboxConnection, Membership, Organization, SyncProfile

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)
try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
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

WAIT = 15
SCREENSHOTS = Path(os.environ.get("PORTAL_SCREENSHOT_DIR")
                   or Path(tempfile.gettempdir()) / "portal-screenshots")


class PickerBrowserTestCase(StaticLiveServerTestCase):
    """Headless Chromium against the live server, and the picker's helpers; no tests of its own
    (the share's scenario, test_attachment_picker_share_browser.py, reuses it)."""

    @pytest.fixture(autouse=True)
    def _browser(self) -> Iterator[None]:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # Root in a container has no user namespaces for Chromium's sandbox.
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--lang=en-US"):
            options.add_argument(argument)
        options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
        self.browser = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER),
                                        options=options)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield
        self.browser.quit()

    def _shot(self, name: str) -> None:
        self.browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    def _sign_in(self, user: User) -> None:
        client = Client()
        client.force_login(user)
        self.browser.get(f"{self.live_server_url}/admin/login/")
        self.browser.add_cookie({"name": settings.SESSION_COOKIE_NAME,
                                 "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                                 "path": "/"})

    def _click(self, css: str) -> None:
        element = WebDriverWait(self.browser, WAIT).until(
            expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, css)))
        self.browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def _location_is(self, text: str) -> None:
        WebDriverWait(self.browser, WAIT).until(expected_conditions.text_to_be_present_in_element(
            (By.CSS_SELECTOR, "dialog[open] .attachment-picker-location"), text))


class AttachmentPickerBrowserTests(PickerBrowserTestCase):
    def _profile(self) -> tuple[SyncProfile, Path]:
        """Bob, Acme's administrator, signed in; Acme's root on the share, with a folder."""
        root = Path(settings.ATTACHMENT_ROOTS[0]) / "acme-browser"
        shutil.rmtree(root, ignore_errors=True)
        (root / "Archiv").mkdir(parents=True)
        self.addCleanup(shutil.rmtree, root, True)
        acme = Organization.objects.create(name="Acme", attachment_roots=str(root))
        bob = User.objects.create_user("bob", "bob@example.org", "unused-password")
        Membership.objects.create(user=bob, organization=acme, role=Membership.Role.ADMIN)
        connection = MailboxConnection(organization=acme, name="Exchange",
                                       ews_url="https://mail.example.org/EWS/Exchange.asmx",
                                       username="svc")
        connection.set_secret("unused")
        connection.save()
        profile = SyncProfile.objects.create(
            organization=acme, user=bob, mailbox="bob@acme.example", connection=connection,
            crm_user=CrmUser.objects.create(organization=acme, name="Bob", login="bob"))
        self._sign_in(bob)
        return profile, root

    def test_browsing_creating_and_choosing_a_folder_on_the_share(self) -> None:
        profile, root = self._profile()
        browser = self.browser
        browser.get(f"{self.live_server_url}/admin/profiles/syncprofile/{profile.pk}/change/")
        field = browser.find_element(By.ID, "id_mailsettings-0-attachment_directory")
        help_text = browser.find_element(
            By.ID, "id_mailsettings-0-attachment_directory_helptext").text
        self.assertIn(f"Allowed: inside {root}.", help_text)

        self._click("#id_mailsettings-0-attachment_directory + .attachment-picker-button")
        self._location_is("Approved attachment folders")
        self._click(f'dialog[open] .attachment-picker-folder[data-path="{root}"]')
        self._location_is(str(root))
        self.assertEqual([b.text for b in browser.find_elements(
            By.CSS_SELECTOR, "dialog[open] .attachment-picker-folder")], ["Archiv"])
        self._shot("attachment-picker-1-root")

        name = browser.find_element(By.CSS_SELECTOR, "dialog[open] .attachment-picker-name")
        name.send_keys("../mimo")
        self._click("dialog[open] .attachment-picker-create")
        error = WebDriverWait(browser, WAIT).until(
            expected_conditions.visibility_of_element_located(
                (By.CSS_SELECTOR, "dialog[open] .attachment-picker-error")))
        self.assertIn("cannot be a folder name", error.text)
        self._shot("attachment-picker-2-refused")
        self.assertFalse((root.parent / "mimo").exists())

        name.clear()
        name.send_keys("Přílohy 2026")
        self._click("dialog[open] .attachment-picker-create")
        self._location_is(str(root / "Přílohy 2026"))
        self.assertFalse(browser.find_element(
            By.CSS_SELECTOR, "dialog[open] .attachment-picker-error").is_displayed())
        self.assertTrue((root / "Přílohy 2026").is_dir())
        self._shot("attachment-picker-3-created")
        self._click("dialog[open] .attachment-picker-choose")
        WebDriverWait(browser, WAIT).until(expected_conditions.invisibility_of_element_located(
            (By.CSS_SELECTOR, "dialog.attachment-picker-dialog")))
        self.assertEqual(field.get_attribute("value"), str(root / "Přílohy 2026"))

        browser.find_element(By.ID, "id_mailsettings-0-save_attachments").click()
        browser.find_element(By.NAME, "_continue").click()
        WebDriverWait(browser, WAIT).until(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".messagelist .success")))
        self._shot("attachment-picker-4-saved")
        mail = SyncProfile.objects.get(pk=profile.pk).mailsettings
        self.assertEqual((mail.attachment_directory, mail.save_attachments),
                         (str(root / "Přílohy 2026"), True))

        # Opened again, the picker starts in the folder the field names.
        self._click("#id_mailsettings-0-attachment_directory + .attachment-picker-button")
        self._location_is(str(root / "Přílohy 2026"))
