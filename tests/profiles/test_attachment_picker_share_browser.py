"""The attachment directory's "…" picker in a real browser, on an organization's Windows share
(a real Samba, tests/samba.py): Acme's administrator browses the share root, is refused a
hostile name, creates a folder on the share, chooses it and saves the profile with its UNC path.

Screenshots are saved under $PORTAL_SCREENSHOT_DIR (default: <tmp>/portal-screenshots).
Needs the Debian packages `chromium` and `chromium-driver`; without them the test is skipped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from crm.models import CrmUser
from profiles.models import MailboxConnection, Membership, Organization, SyncProfile
from tests.profiles.test_attachment_picker_browser import WAIT, PickerBrowserTestCase
from tests.profiles.test_attachment_picker_browser import pytestmark as browser_marks
from tests.samba import PASSWORD, USER, Samba, samba  # noqa: F401 (fixture)

pytestmark = browser_marks


class ShareAttachmentPickerBrowserTests(PickerBrowserTestCase):
    @pytest.fixture(autouse=True)
    def _samba(self, samba: Samba) -> None:  # noqa: F811
        self.samba = samba

    def _share_profile(self) -> tuple[SyncProfile, str, Path]:
        """Bob, Acme's administrator, signed in; Acme's root is a folder on the share."""
        disk = self.samba.share_path() / "picker-browser-acme"
        shutil.rmtree(disk, ignore_errors=True)
        for folder in ("Faktury", "archiv", ".sha256"):
            (disk / folder).mkdir(parents=True)
        (disk / "readme.txt").write_text("not a folder")
        self.addCleanup(shutil.rmtree, disk, True)
        root = self.samba.unc("attachments", "picker-browser-acme")
        acme = Organization(name="Acme", attachment_storage="smb", attachment_roots=root,
                            share_username=USER, share_port=self.samba.port)
        acme.set_share_secret(PASSWORD)
        acme.full_clean()
        acme.save()
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
        return profile, root, disk

    def _folders(self) -> list[str]:
        return [b.text for b in self.browser.find_elements(
            By.CSS_SELECTOR, "dialog[open] .attachment-picker-folder")]

    def test_browsing_creating_and_choosing_a_folder_on_a_windows_share(self) -> None:
        profile, root, disk = self._share_profile()
        chosen = f"{root}\\Přílohy 2026"
        browser = self.browser
        browser.get(f"{self.live_server_url}/admin/profiles/syncprofile/{profile.pk}/change/")
        field = browser.find_element(By.ID, "id_mailsettings-0-attachment_directory")

        self._click("#id_mailsettings-0-attachment_directory + .attachment-picker-button")
        self._location_is("Approved attachment folders")
        self.assertEqual(self._folders(), [root])
        # Located by text, not by a [data-path] selector: backslashes are CSS escapes.
        root_button = browser.find_element(By.CSS_SELECTOR,
                                           "dialog[open] .attachment-picker-folder")
        self.assertEqual(root_button.get_attribute("data-path"), root)
        root_button.click()
        self._location_is(root)
        # No files, no dot folders (the store's bookkeeping).
        self.assertEqual(self._folders(), ["archiv", "Faktury"])
        self._shot("attachment-picker-share-1-root")

        name = browser.find_element(By.CSS_SELECTOR, "dialog[open] .attachment-picker-name")
        name.send_keys("..\\mimo")
        self._click("dialog[open] .attachment-picker-create")
        error = WebDriverWait(browser, WAIT).until(
            expected_conditions.visibility_of_element_located(
                (By.CSS_SELECTOR, "dialog[open] .attachment-picker-error")))
        self.assertIn("cannot be a folder name", error.text)
        self._shot("attachment-picker-share-2-refused")
        self.assertFalse((disk.parent / "mimo").exists())
        self.assertEqual(sorted(p.name for p in disk.iterdir()),
                         [".sha256", "Faktury", "archiv", "readme.txt"])

        name.clear()
        name.send_keys("Přílohy 2026")
        self._click("dialog[open] .attachment-picker-create")
        self._location_is(chosen)
        self.assertFalse(browser.find_element(
            By.CSS_SELECTOR, "dialog[open] .attachment-picker-error").is_displayed())
        self.assertTrue((disk / "Přílohy 2026").is_dir())
        self._shot("attachment-picker-share-3-created")
        self._click("dialog[open] .attachment-picker-choose")
        WebDriverWait(browser, WAIT).until(expected_conditions.invisibility_of_element_located(
            (By.CSS_SELECTOR, "dialog.attachment-picker-dialog")))
        self.assertEqual(field.get_attribute("value"), chosen)

        browser.find_element(By.ID, "id_mailsettings-0-save_attachments").click()
        browser.find_element(By.NAME, "_continue").click()
        WebDriverWait(browser, WAIT).until(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".messagelist .success")))
        self._shot("attachment-picker-share-4-saved")
        mail = SyncProfile.objects.get(pk=profile.pk).mailsettings
        self.assertEqual((mail.attachment_directory, mail.save_attachments), (chosen, True))

        # Opened again, the picker starts in the folder the field names.
        self._click("#id_mailsettings-0-attachment_directory + .attachment-picker-button")
        self._location_is(chosen)
        self.assertEqual(self._folders(), [])
