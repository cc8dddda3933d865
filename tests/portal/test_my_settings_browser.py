""""My sync settings" in a real browser: headless Chromium against the live server and ewsim.

A user whose administrator made the calendar window and the folders theirs opens the page
from the menu, is refused an impossible number of days, picks another calendar folder from
their own mailbox with the "…" picker (under the user pages' strict Content-Security-Policy),
saves, and the audit log holds the change under their name.

Screenshots go where the other portal browser tests put theirs (tests/portal/test_browser.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from ewsim.testing import SimHandle, ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import AuditEntry, SyncProfile
from profiles.models.self_service import UserOption
from tests.engine.sync_helpers import make_profile
from tests.portal.test_browser import CHROMEDRIVER, CHROMIUM, SCREENSHOTS, WAIT, webdriver

if webdriver is not None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(webdriver is None, reason="selenium is not installed: "
                       "pip install -e '.[test]'"),
    pytest.mark.skipif(not (CHROMEDRIVER and CHROMIUM), reason="headless Chromium is not "
                       "installed: apt-get install chromium chromium-driver"),
]


class MySettingsBrowserTests(StaticLiveServerTestCase):
    sim: SimHandle
    browser: WebDriver

    @pytest.fixture(autouse=True)
    def _browser(self, ewsim: SimHandle) -> Iterator[None]:  # noqa: F811
        self.sim = ewsim
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # Root in a container has no user namespaces for Chromium's sandbox.
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--lang=en-US"):
            options.add_argument(argument)
        options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.browser = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER),
                                        options=options)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield
        self.browser.quit()

    def _shot(self, name: str) -> None:
        self.browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    def _wait(self, condition: Callable[[WebDriver], object], message: str = "") -> object:
        return WebDriverWait(self.browser, WAIT, poll_frequency=0.1).until(condition, message)

    def _field(self, name: str) -> object:
        return self.browser.find_element(By.NAME, f"{self.prefix}-{name}")

    def _type(self, name: str, text: str) -> None:
        field = self._field(name)
        field.clear()  # type: ignore[attr-defined]
        field.send_keys(text)  # type: ignore[attr-defined]

    def test_a_user_changes_the_window_and_picks_a_folder_from_their_mailbox(self) -> None:
        profile = make_profile(self.sim)          # alice, password "pw", her own profile
        profile.organization.self_service = [UserOption.CALENDAR_WINDOW, UserOption.FOLDERS]
        profile.organization.save()
        crm = self.sim.control.call("POST", "folders", {
            "mailbox": self.sim.user, "parent": "calendar", "name": "CRM",
            "folder_class": "IPF.Appointment"})
        self.prefix = f"p{profile.pk}"
        browser = self.browser

        browser.get(f"{self.live_server_url}/")
        browser.find_element(By.ID, "id_username").send_keys("alice")
        browser.find_element(By.ID, "id_password").send_keys("pw")
        browser.find_element(By.CSS_SELECTOR, "form.stacked-form button[type=submit]").click()
        self._wait(expected_conditions.presence_of_element_located((By.ID, "profiles")))
        browser.find_element(By.LINK_TEXT, "My sync settings").click()
        self._wait(expected_conditions.url_contains("/my-settings/"))
        legends = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "legend")]
        assert legends == ["Events", "Contacts"], legends
        assert not browser.find_elements(By.NAME, f"{self.prefix}-calendarsettings-direction")
        self._shot("21-my-settings")

        self._type("calendarsettings-days_past", "5000")
        browser.find_element(By.CSS_SELECTOR, "button.primary").click()
        error = self._wait(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".field-error")))
        assert "less than or equal to 3650" in error.text  # type: ignore[attr-defined]
        self._shot("22-my-settings-refused")

        self._type("calendarsettings-days_past", "30")
        path = self._field("calendarsettings-folder_path")
        picker = path.find_element(By.XPATH, "following-sibling::button")  # type: ignore[attr-defined]
        picker.click()
        self._wait(lambda b: b.find_elements(By.CSS_SELECTOR, ".folder-picker-choice"),
                   "the picker listed no folders")
        heading = browser.find_element(By.CSS_SELECTOR, ".folder-picker-status").text
        assert heading == "Choose a folder:", heading
        choices = [c.text for c in browser.find_elements(By.CSS_SELECTOR,
                                                         ".folder-picker-choice")]
        assert choices == ["Calendar", "CRM"], choices
        self._shot("23-my-settings-picker")
        browser.find_element(By.CSS_SELECTOR, f'[data-folder-id="{crm["id"]}"]').click()
        assert path.get_attribute("value") == "Calendar/CRM"  # type: ignore[attr-defined]
        browser.find_element(By.CSS_SELECTOR, "button.primary").click()
        message = self._wait(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".message-success")))
        assert "are saved" in message.text  # type: ignore[attr-defined]
        self._shot("24-my-settings-saved")

        calendar = SyncProfile.objects.get(pk=profile.pk).calendarsettings
        assert (calendar.days_past, calendar.folder_id, calendar.folder_path) == (
            30, crm["id"], "Calendar/CRM")
        entry = AuditEntry.objects.get(action="change", object_type="calendar settings")
        assert entry.actor_name == "alice"
        assert entry.changes["days_past"] == {"from": 14, "to": 30}
        refused = [line for line in browser.get_log("browser")
                   if "Content Security Policy" in line["message"]]
        assert not refused, refused

        browser.set_window_size(390, 844)   # a phone
        browser.get(f"{self.live_server_url}/my-settings/")
        width = browser.execute_script("return document.documentElement.scrollWidth;")
        assert width <= 390, f"the page is {width}px wide on a 390px phone"
        self._shot("25-my-settings-phone")
