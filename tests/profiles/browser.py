"""Headless Chromium for the admin's browser tests: the driver, signing in, screenshots.

Needs the Debian packages `chromium` and `chromium-driver` (CI installs them); without them
the tests using `pytestmark` are skipped, saying so. Screenshots are saved under
$ADMIN_SCREENSHOT_DIR (default: <tmp>/admin-screenshots).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)
SCREENSHOTS = Path(os.environ.get("ADMIN_SCREENSHOT_DIR")
                   or Path(tempfile.gettempdir()) / "admin-screenshots")
try:
    from selenium import webdriver
except ImportError:  # pragma: no cover (the test extras install it)
    webdriver = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(webdriver is None, reason="selenium is not installed: "
                       "pip install -e '.[test]'"),
    pytest.mark.skipif(not (CHROMEDRIVER and CHROMIUM), reason="headless Chromium is not "
                       "installed: apt-get install chromium chromium-driver"),
]


def start_browser() -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Root in a container has no user namespaces for Chromium's sandbox.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--lang=en-US"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)


def sign_in(browser: Any, live_server_url: str, user: Any) -> None:
    """`user` signed in, with a session made by the test client (no login form typed)."""
    client = Client()
    client.force_login(user)
    browser.get(f"{live_server_url}/admin/login/")
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME,
                        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                        "path": "/"})


def screenshot(browser: Any, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path
