"""The category picker in a real browser: headless Chromium on the profile change page, with
the mailbox's categories from ewsim. Contact categories are ticked in a coloured checklist and
typed, a pairing's Exchange category is clicked, and an unreachable mailbox leaves the field
as free text, saying why. Screenshots: tests/profiles/browser.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from crm.models import CrmUser, EventCategory
from ewsim.testing import SimHandle, ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import CategoryPairing, MailboxConnection, Organization, SyncProfile
from tests.profiles.browser import pytestmark, screenshot, sign_in, start_browser

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError:  # pragma: no cover (skipped by pytestmark)
    pass

__all__ = ["pytestmark"]
WAIT = 15   # seconds; the page and ewsim answer in well under one
CONTACT_CATEGORIES = "id_contactsettings-0-only_categories"


class CategoryPickerBrowserTests(StaticLiveServerTestCase):
    sim: SimHandle

    @pytest.fixture(autouse=True)
    def _browser(self, ewsim: SimHandle) -> Iterator[None]:  # noqa: F811
        self.sim = ewsim
        self.browser = start_browser()
        yield
        self.browser.quit()

    def _profile(self, password: str | None = None) -> SyncProfile:
        """Alice's profile on ewsim with its own credentials; Alice signed in (a superuser)."""
        self.sim.control.set_categories(self.sim.user, [
            {"name": "Hotline", "color": "preset0"}, {"name": "Instalace", "color": "preset4"},
            {"name": "Registrace", "color": "preset7"}, {"name": "Osobní", "color": "none"}])
        organization = Organization.objects.create(name="Acme")
        self.hotline = EventCategory.objects.create(organization=organization, name="HOTLINE")
        alice = User.objects.create_superuser("alice", "alice@example.org", "unused-password")
        connection = MailboxConnection(
            organization=organization, name="ewsim", ews_url=self.sim.url,
            auth_type=MailboxConnection.Auth.BASIC, access=MailboxConnection.Access.PER_USER)
        connection.save()
        profile = SyncProfile(
            organization=organization, user=alice, mailbox=self.sim.user,
            crm_user=CrmUser.objects.create(organization=organization, name="Alice",
                                            login="alice"),
            connection=connection, mailbox_username=self.sim.user)
        profile.set_mailbox_secret(password or self.sim.password)
        profile.save()
        sign_in(self.browser, self.live_server_url, alice)
        self.browser.get(
            f"{self.live_server_url}/admin/profiles/syncprofile/{profile.pk}/change/")
        return profile

    def _wait(self) -> WebDriverWait:
        return WebDriverWait(self.browser, WAIT)

    def _open_picker(self, field_id: str) -> None:
        button = self.browser.find_element(By.CSS_SELECTOR,
                                           f"#{field_id} + .category-picker-button")
        self.browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()

    def _save(self) -> None:
        self.browser.find_element(By.NAME, "_continue").click()
        self._wait().until(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".messagelist .success")))

    def test_contact_categories_are_ticked_with_their_colours_and_typed(self) -> None:
        profile = self._profile()
        self._open_picker(CONTACT_CATEGORIES)
        wait = self._wait()
        hotline = wait.until(expected_conditions.element_to_be_clickable(
            (By.CSS_SELECTOR, 'dialog[open] li[data-category="Hotline"] input')))
        names = [item.text for item in self.browser.find_elements(
            By.CSS_SELECTOR, "dialog[open] .category-picker-name")]
        self.assertEqual(names, ["Hotline", "Instalace", "Osobní", "Registrace"])
        swatch = self.browser.find_element(
            By.CSS_SELECTOR, 'dialog[open] li[data-category="Hotline"] .category-picker-swatch')
        self.assertEqual(swatch.value_of_css_property("background-color"),
                         "rgba(231, 72, 75, 1)")
        self.assertEqual(swatch.get_attribute("title"), "Red")
        hotline.click()
        self.browser.find_element(
            By.CSS_SELECTOR, 'dialog[open] li[data-category="Registrace"] input').click()
        typed = self.browser.find_element(By.CSS_SELECTOR, "dialog[open] .category-picker-other")
        typed.send_keys("Nový zákazník", Keys.ENTER)   # Enter adds; it does not submit
        typed_entry = wait.until(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, 'dialog[open] li[data-category="Nový zákazník"]')))
        self.assertTrue(typed_entry.find_element(By.TAG_NAME, "input").is_selected())
        self.assertIn("not in the mailbox's list", typed_entry.text)
        field = self.browser.find_element(By.ID, CONTACT_CATEGORIES)
        self.assertEqual(field.get_attribute("value"), "Hotline\nRegistrace\nNový zákazník")
        screenshot(self.browser, "category-picker-contacts")
        hotline.click()   # unticked: its line goes
        self.assertEqual(field.get_attribute("value"), "Registrace\nNový zákazník")
        self.browser.find_element(By.CSS_SELECTOR, "dialog[open] .category-picker-close").click()
        self._save()
        self.assertEqual(SyncProfile.objects.get(pk=profile.pk).contactsettings.only_categories,
                         ["Registrace", "Nový zákazník"])

    def test_a_pairings_exchange_category_is_clicked_in_the_list(self) -> None:
        profile = self._profile()
        browser = self.browser
        add = browser.find_element(By.CSS_SELECTOR, "#category_pairings-group .add-row a")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", add)
        add.click()
        Select(browser.find_element(By.ID, "id_category_pairings-0-crm_category")) \
            .select_by_visible_text("HOTLINE")
        self._open_picker("id_category_pairings-0-exchange_category")
        choice = self._wait().until(expected_conditions.element_to_be_clickable(
            (By.CSS_SELECTOR, 'dialog[open] li[data-category="Hotline"] .category-picker-choice')))
        screenshot(browser, "category-picker-pairing")
        choice.click()
        self.assertEqual(browser.find_element(By.ID, "id_category_pairings-0-exchange_category")
                         .get_attribute("value"), "Hotline")
        self._save()
        self.assertEqual(list(CategoryPairing.objects.filter(profile=profile).values_list(
            "crm_category__name", "exchange_category")), [("HOTLINE", "Hotline")])

    def test_an_unreachable_mailbox_leaves_free_text_and_says_why(self) -> None:
        profile = self._profile(password="wrong")
        self._open_picker(CONTACT_CATEGORIES)
        wait = self._wait()
        status = wait.until(expected_conditions.visibility_of_element_located(
            (By.CSS_SELECTOR, "dialog[open] .category-picker-status.errornote")))
        self.assertIn("Authentication failed", status.text)
        self.assertIn("Type the category's name instead.", status.text)
        note = self.browser.find_element(By.CSS_SELECTOR, ".category-picker-note")
        self.assertIn("The mailbox's category list is missing: Authentication failed",
                      note.text)
        typed = self.browser.switch_to.active_element   # the dialog's own entry has the focus
        typed.send_keys("Hotline", Keys.ENTER)
        entry = self.browser.find_element(By.CSS_SELECTOR,
                                          'dialog[open] li[data-category="Hotline"]')
        self.assertNotIn("not in the mailbox's list", entry.text)   # no list was read
        screenshot(self.browser, "category-picker-unreachable")
        self.browser.find_element(By.CSS_SELECTOR, "dialog[open] .category-picker-close").click()
        field = self.browser.find_element(By.ID, CONTACT_CATEGORIES)
        field.send_keys("\nInstalace")   # and the field itself takes typing
        self._save()
        self.assertEqual(SyncProfile.objects.get(pk=profile.pk).contactsettings.only_categories,
                         ["Hotline", "Instalace"])
