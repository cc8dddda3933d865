"""The admin in a real browser: the mailbox connection form shows only the chosen kind's fields,
and every change list fits a 1366-px-wide screen without scrolling sideways.

Screenshots are saved under $ADMIN_SCREENSHOT_DIR (default: <tmp>/admin-screenshots).
Needs the Debian packages `chromium` and `chromium-driver`; without them the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import Client

from crm.models import CrmUser, Email, Event
from engine.models import Run
from profiles.models import MailboxConnection, Organization, SyncProfile
from tests.crm_data import make_crm_records

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)
try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
except ImportError:  # pragma: no cover (the test extras install it)
    webdriver = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(webdriver is None, reason="selenium is not installed: "
                       "pip install -e '.[test]'"),
    pytest.mark.skipif(not (CHROMEDRIVER and CHROMIUM), reason="headless Chromium is not "
                       "installed: apt-get install chromium chromium-driver"),
]

SCREEN_WIDTH = 1366
SCREENSHOTS = Path(os.environ.get("ADMIN_SCREENSHOT_DIR")
                   or Path(tempfile.gettempdir()) / "admin-screenshots")
LONG = ("Quarterly review of the service contract with ACME s.r.o., Praha – pricing, "
        "support hours, the hotline and the new sites in Brno and Ostrava")


class AdminBrowserTests(StaticLiveServerTestCase):
    @pytest.fixture(autouse=True)
    def _browser(self) -> Iterator[None]:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # Root in a container has no user namespaces for Chromium's sandbox.
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         f"--window-size={SCREEN_WIDTH},900"):
            options.add_argument(argument)
        self.browser = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER),
                                        options=options)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield
        self.browser.quit()

    def _sign_in(self) -> User:
        alice = User.objects.create_superuser("alice", "alice@example.org", "unused-password")
        client = Client()
        client.force_login(alice)
        self.browser.get(f"{self.live_server_url}/admin/login/")
        self.browser.add_cookie({"name": settings.SESSION_COOKIE_NAME,
                                 "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                                 "path": "/"})
        return alice

    def _shown(self, name: str) -> bool:
        return self.browser.find_element(By.NAME, name).is_displayed()

    def test_choosing_graph_hides_the_ews_fields_and_choosing_ews_hides_the_graph_ones(
            self) -> None:
        self._sign_in()
        Organization.objects.create(name="Acme")
        self.browser.get(f"{self.live_server_url}/admin/profiles/mailboxconnection/add/")
        kind = Select(self.browser.find_element(By.ID, "id_kind"))
        auth = Select(self.browser.find_element(By.ID, "id_auth_type"))
        # EWS with NTLM, the defaults: no Graph field, no Entra ID app.
        self.assertTrue(all(map(self._shown, ("ews_url", "auth_type", "username", "secret"))))
        self.assertFalse(any(map(self._shown, ("graph_url", "graph_mailbox", "tenant_id"))))
        auth.select_by_value("oauth2")
        self.assertTrue(self._shown("tenant_id"))
        auth.select_by_value("ntlm")

        kind.select_by_value("graph")
        self.browser.save_screenshot(str(SCREENSHOTS / "connection-graph.png"))
        self.assertFalse(any(map(self._shown, ("ews_url", "server_version", "auth_type",
                                               "access", "username"))))
        self.assertTrue(all(map(self._shown, ("graph_url", "graph_mailbox", "tenant_id",
                                              "client_id", "secret", "verify_tls"))))

        kind.select_by_value("ews")
        self.browser.save_screenshot(str(SCREENSHOTS / "connection-ews.png"))
        self.assertTrue(all(map(self._shown, ("ews_url", "auth_type", "username"))))
        self.assertFalse(any(map(self._shown, ("graph_url", "graph_mailbox", "tenant_id"))))

    def _wide_records(self, alice: User) -> None:
        """Records with long values in every list: the widest lists the admin shows."""
        organization = Organization.objects.create(name="ACME Corporation s.r.o., Praha")
        connection = MailboxConnection(
            organization=organization, name="ACME on-premises Exchange (Praha, building B)",
            ews_url="https://mail.exchange-cluster.praha.acme-corporation.example/EWS/"
                    "Exchange.asmx", username="ACME\\svc-crm-sync")
        connection.set_secret("service-password")
        connection.save()
        crm_user = CrmUser.objects.create(organization=organization,
                                          name="Pavla Nováková-Dvořáková", login="pnovakova")
        profile = SyncProfile.objects.create(
            organization=organization, user=alice, crm_user=crm_user, connection=connection,
            mailbox="pavla.novakova-dvorakova@acme-corporation.example")
        make_crm_records(organization, profile=profile)
        start = datetime(2027, 1, 15, 13, tzinfo=UTC)
        Event.objects.create(organization=organization, owner=crm_user, subject=LONG,
                             start=start, end=start + timedelta(hours=1),
                             time_zone="America/Argentina/ComodRivadavia")
        Email.objects.create(organization=organization, subject=LONG,
                             sender_address="pavla.novakova-dvorakova@acme-corporation.example")
        Run.objects.create(profile=profile, agenda="calendar", status=Run.Status.FAILED,
                           message=LONG, crm_created=12345, crm_updated=12345,
                           crm_deleted=12345, remote_created=12345, remote_updated=12345,
                           remote_deleted=12345, conflicts=12345, errors=12345,
                           duplicates=12345, requests=123456)

    def test_every_change_list_fits_a_1366_px_wide_screen(self) -> None:
        alice = self._sign_in()
        self._wide_records(alice)
        too_wide = {}
        for model in admin.site._registry:
            meta = model._meta
            self.browser.get(
                f"{self.live_server_url}/admin/{meta.app_label}/{meta.model_name}/")
            page, table = self.browser.execute_script(
                "const t = document.getElementById('result_list');"
                "return [document.documentElement.scrollWidth,"
                "        t ? Math.ceil(t.getBoundingClientRect().right) : 0];")
            self.browser.save_screenshot(
                str(SCREENSHOTS / f"list-{meta.app_label}-{meta.model_name}.png"))
            if max(page, table) > SCREEN_WIDTH:
                too_wide[f"{meta.app_label}.{meta.model_name}"] = (page, table)
        self.assertEqual(too_wide, {})
