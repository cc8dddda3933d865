"""A Czech browser sees no English: headless Chromium set to Czech reads the user pages and
the sync configuration's admin as a person sees them (the text on screen, tooltips, button
labels) and finds no English word of the catalogue there.

Screenshots are saved under $PORTAL_SCREENSHOT_DIR (default: <tmp>/portal-screenshots), named
czech-*.png. Needs the Debian packages `chromium` and `chromium-driver`; without them the
test is skipped.
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
from django.urls import reverse

from crm.models import CrmUser
from engine.models import DuplicateCandidate, Run, RunItem
from profiles.models import MailboxConnection, Membership, Organization, SyncProfile
from tests.portal.english import english_in
from tests.portal.test_czech_pages import ITEMS

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)
try:
    from selenium import webdriver
    from selenium.webdriver.remote.webdriver import WebDriver
except ImportError:  # pragma: no cover (the test extras install it)
    webdriver = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(webdriver is None, reason="selenium is not installed: "
                       "pip install -e '.[test]'"),
    pytest.mark.skipif(not (CHROMEDRIVER and CHROMIUM), reason="headless Chromium is not "
                       "installed: apt-get install chromium chromium-driver"),
]

SCREENSHOTS = Path(os.environ.get("PORTAL_SCREENSHOT_DIR")
                   or Path(tempfile.gettempdir()) / "portal-screenshots")
# What a person reads on the page: the visible text and the texts shown on hover, read
# aloud or written on buttons.
READ_TEXT = """
const texts = [document.title, document.body.innerText];
for (const el of document.querySelectorAll('[title], [placeholder], [aria-label], [alt]')) {
  for (const name of ['title', 'placeholder', 'aria-label', 'alt']) {
    if (el.getAttribute(name)) texts.push(el.getAttribute(name));
  }
}
for (const el of document.querySelectorAll('input[type=submit], input[type=button]')) {
  texts.push(el.value);
}
return texts;
"""


class CzechBrowserTests(StaticLiveServerTestCase):
    browser: WebDriver

    @pytest.fixture(autouse=True)
    def _browser(self) -> Iterator[None]:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # Root in a container has no user namespaces for Chromium's sandbox.
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1366,900", "--lang=cs"):
            options.add_argument(argument)
        options.add_experimental_option("prefs", {"intl.accept_languages": "cs,cs-CZ"})
        self.browser = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER),
                                        options=options)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield
        self.browser.quit()

    def _sign_in(self, user: User) -> None:
        client = Client()
        client.force_login(user)
        self.browser.get(f"{self.live_server_url}/admin/login/")
        self.browser.delete_all_cookies()
        self.browser.add_cookie({"name": settings.SESSION_COOKIE_NAME,
                                 "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                                 "path": "/"})

    def _english_on(self, url: str, shot: str) -> list[str]:
        self.browser.get(f"{self.live_server_url}{url}")
        self.browser.save_screenshot(str(SCREENSHOTS / f"czech-{shot}.png"))
        assert self.browser.find_element("css selector", "html").get_attribute("lang") == "cs"
        lines = [line.strip() for text in self.browser.execute_script(READ_TEXT)
                 for line in (text or "").splitlines() if line.strip()]
        return english_in(lines)

    def test_a_czech_browser_sees_no_english_on_the_user_pages_or_the_configuration_admin(
            self) -> None:
        organization = Organization.objects.create(name="Stavby Novák")
        alice = User.objects.create_superuser("alena", "alena@stavby.example", "unused")
        dave = User.objects.create_user("pavel", "pavel@stavby.example", "unused")
        Membership.objects.create(user=dave, organization=organization,
                                  role=Membership.Role.USER)
        connection = MailboxConnection(organization=organization, name="Firemní Exchange",
                                       ews_url="https://posta.stavby.example/EWS/Exchange.asmx",
                                       username="STAVBY\\synchronizace")
        connection.set_secret("heslo-sluzby")
        connection.save()
        profile = SyncProfile.objects.create(
            organization=organization, user=dave, mailbox="pavel@stavby.example",
            crm_user=CrmUser.objects.create(organization=organization, name="Pavel Novák",
                                            login="pavel"),
            connection=connection)
        run = Run.objects.create(profile=profile, agenda="contacts",
                                 status=Run.Status.PARTIAL, crm_created=2, errors=1)
        RunItem.objects.bulk_create(RunItem(run=run, action=action, title=title, detail=detail)
                                    for action, title, detail in ITEMS)
        DuplicateCandidate.objects.create(profile=profile, crm_key="1", remote_id="AAMk-1",
                                          address="info@stavby.cz", crm_title="Petr Svoboda",
                                          remote_title="Petr Svoboda")

        found: dict[str, list[str]] = {}
        self._sign_in(dave)
        for shot, url in (("dashboard", reverse("portal:dashboard")),
                          ("history", reverse("portal:history")),
                          ("run", reverse("portal:run", args=[run.pk])),
                          ("duplicates", reverse("portal:duplicates"))):
            found[url] = self._english_on(url, shot)
        self._sign_in(alice)
        for shot, url in (
                ("admin-index", reverse("admin:index")),
                ("admin-profiles", reverse("admin:profiles_syncprofile_changelist")),
                ("admin-profile", reverse("admin:profiles_syncprofile_change",
                                          args=[profile.pk])),
                ("admin-new-profile", reverse("admin:profiles_syncprofile_add")),
                ("admin-connection", reverse("admin:profiles_mailboxconnection_change",
                                             args=[connection.pk])),
                ("admin-organization", reverse("admin:profiles_organization_change",
                                               args=[organization.pk])),
                ("admin-run", reverse("admin:engine_run_change", args=[run.pk]))):
            found[url] = self._english_on(url, shot)
        found = {url: words for url, words in found.items() if words}
        assert not found, "\n".join(f"{url}: {words}" for url, words in found.items())
