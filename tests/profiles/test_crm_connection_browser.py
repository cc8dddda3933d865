"""The CRM connection form in a real browser: only the chosen kind's settings show, and
choosing another kind shows its own at once (crm_kind.js). Screenshots: tests/profiles/browser.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from profiles.models import Organization
from tests.profiles.browser import pytestmark, screenshot, sign_in, start_browser

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
except ImportError:  # pragma: no cover (skipped by pytestmark)
    pass

__all__ = ["pytestmark"]


class CrmKindBrowserTests(StaticLiveServerTestCase):
    @pytest.fixture(autouse=True)
    def _browser(self) -> Iterator[None]:
        self.browser = start_browser()
        yield
        self.browser.quit()

    def test_only_the_chosen_kinds_settings_are_shown(self) -> None:
        organization = Organization.objects.create(name="Acme")
        alice = User.objects.create_superuser("alice", "alice@example.org", "unused-password")
        sign_in(self.browser, self.live_server_url, alice)
        self.browser.get(f"{self.live_server_url}/admin/profiles/crmconnection/"
                         f"{organization.crm_connection.pk}/change/")
        limited = self.browser.find_element(By.CSS_SELECTOR, "fieldset.crm-kind-limited")
        api_key = self.browser.find_element(By.ID, "id_limited__api_key")
        assert not limited.is_displayed()

        Select(self.browser.find_element(By.ID, "id_kind")).select_by_value("limited")
        assert limited.is_displayed()
        assert api_key.get_attribute("type") == "password"
        screenshot(self.browser, "crm-connection-limited")

        Select(self.browser.find_element(By.ID, "id_kind")).select_by_value("builtin")
        assert not limited.is_displayed()
