"""The user pages in a real browser: headless Chromium against the live server and ewsim.

A user signs in, presses Sync now with the keyboard, and the queued task is then run the way
a worker runs it (engine.jobs.run_job with the task's own arguments) in a thread, while the
page — never reloaded — polls and shows the progress until the run has finished. Then the
run's detail, and a duplicate pair linked from the report. A user whose profile is paused
presses Sync now and is told so.

Screenshots are saved under $PORTAL_SCREENSHOT_DIR (default: <tmp>/portal-screenshots).
Needs the Debian packages `chromium` and `chromium-driver`; without them the test is skipped.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.db import connections
from django.utils import formats, timezone
from django_q.models import OrmQ

from crm.models import Event, Person
from engine.jobs import run_job
from engine.models import DuplicateCandidate, Run
from ewsim.testing import SimHandle, ewsim, ewsim_server  # noqa: F401 (fixtures)
from tests.engine.sync_helpers import make_profile
from tests.engine.test_contacts_sync import add_exchange_contact

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)
try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver
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

WAIT = 30          # seconds; the whole sync takes a few
CONTACTS = 240     # three pages of Exchange changes: three batches, progress in steps
SCREENSHOTS = Path(os.environ.get("PORTAL_SCREENSHOT_DIR")
                   or Path(tempfile.gettempdir()) / "portal-screenshots")


def run_queued_tasks_in_a_thread() -> threading.Thread:
    """Take the queued tasks off the broker and run them as a worker would, in a thread.

    An in-memory SQLite test database exists only in its one connection: the thread uses
    it, as Django's live server thread does (on PostgreSQL it opens its own)."""
    tasks = [(task.args(), task.kwargs()) for task in OrmQ.objects.all()]
    assert tasks, "nothing was queued"
    OrmQ.objects.all().delete()
    shared = {conn.alias: conn for conn in connections.all()
              if conn.vendor == "sqlite" and conn.is_in_memory_db()}
    for conn in shared.values():
        conn.inc_thread_sharing()

    def work() -> None:
        for alias, conn in shared.items():
            connections[alias] = conn
        try:
            for args, kwargs in tasks:
                run_job(*args, **kwargs)
        finally:
            for conn in connections.all():
                if conn.alias not in shared:
                    conn.close()
            for conn in shared.values():
                conn.dec_thread_sharing()

    thread = threading.Thread(target=work, name="test-worker")
    thread.start()
    return thread


def _replaced_under_our_feet(error: WebDriverException) -> bool:
    """An element of a page being replaced: selenium says stale, or Chromium's inspector
    answers that the node "does not belong to the document" when the element is touched
    while the next page takes its place."""
    return (isinstance(error, StaleElementReferenceException)
            or "does not belong to the document" in (error.msg or ""))


class PortalBrowserTests(StaticLiveServerTestCase):
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
        self.browser = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER),
                                        options=options)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield
        self.browser.quit()

    def _shot(self, name: str) -> None:
        self.browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    def _wait(self, condition: Callable[[WebDriver], object], message: str = "") -> object:
        # An element read while the page is being replaced goes stale: looked for again.
        def check(browser: WebDriver) -> object:
            try:
                return condition(browser)
            except WebDriverException as exc:
                if _replaced_under_our_feet(exc):
                    return False
                raise

        return WebDriverWait(self.browser, WAIT, poll_frequency=0.1).until(check, message)

    def _until_gone(self, element: object) -> None:
        """Wait until the page that held `element` has been replaced."""
        def gone(_browser: WebDriver) -> bool:
            try:
                element.is_enabled()  # type: ignore[attr-defined]
            except WebDriverException as exc:
                if _replaced_under_our_feet(exc):
                    return True
                raise
            return False

        WebDriverWait(self.browser, WAIT, poll_frequency=0.1).until(gone)

    def _sign_in(self, username: str, password: str) -> None:
        browser = self.browser
        browser.get(f"{self.live_server_url}/")
        self._wait(expected_conditions.url_contains("/login/"))
        browser.find_element(By.ID, "id_username").send_keys(username)
        browser.find_element(By.ID, "id_password").send_keys(password)
        self._shot("01-sign-in")
        browser.find_element(By.CSS_SELECTOR, "form.stacked-form button[type=submit]").click()
        self._wait(expected_conditions.presence_of_element_located((By.ID, "profiles")))

    def _tab_to(self, css: str, presses: int = 40) -> None:
        """Move the focus with the Tab key alone until it is on the element (keyboard use)."""
        target = self.browser.find_element(By.CSS_SELECTOR, css)
        body = self.browser.switch_to.active_element
        for _ in range(presses):
            body.send_keys(Keys.TAB)
            body = self.browser.switch_to.active_element
            if body == target:
                return
        raise AssertionError(f"{css} cannot be reached with the Tab key")

    def _read(self, css: str, script: str) -> str:
        """Read from the page in one step: the polling replaces cells under our feet, so an
        element found first and read afterwards may be gone (stale) in between."""
        return self.browser.execute_script(
            f"var el = document.querySelector(arguments[0]); return el ? {script} : '';",
            css) or ""

    def _now_state(self, row: str) -> str:
        return self._read(f'tr[data-row="{row}"] [data-cell="now"] [data-state]',
                          "el.dataset.state")

    def _items_done(self, row: str) -> int:
        """The number the running row shows ("120 items done"); 0 once it is not running."""
        words = self._read(f'tr[data-row="{row}"] .progress-text', "el.textContent").split()
        return int(words[0]) if words and words[0].isdigit() else 0

    def test_sign_in_sync_now_with_live_progress_open_the_run_and_link_a_duplicate(
            self) -> None:
        profile = make_profile(self.sim)          # alice, password "pw"
        profile.sync_calendar = False
        profile.save()
        for number in range(CONTACTS):
            add_exchange_contact(self.sim, f"Kontakt{number:03}", "Testovací",
                                 f"kontakt{number:03}@firma.cz")
        add_exchange_contact(self.sim, "Petr", "Svoboda", "info@stavby.cz")
        for first in ("Petr", "Pavel"):           # one address, two CRM persons: a duplicate
            Person.objects.create(organization_id=profile.organization_id, first_name=first,
                                  last_name="Svoboda", email1="info@stavby.cz")
        # Every Exchange request takes a little while, so the run lasts a few seconds.
        self.sim.control.fault("delay", "*", count=-1, delay_ms=500)
        browser = self.browser
        row = f"{profile.pk}-contacts"

        self._sign_in("alice", "pw")
        self._shot("02-dashboard-before")
        browser.execute_script("window.notReloaded = true;")

        self._tab_to("button.sync-now")
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        self._wait(lambda b: self._now_state(row) == "queued", "the row never said queued")
        self._shot("03-queued")
        browser.execute_script("window.notReloaded = true;")   # the POST loaded a new page

        worker = run_queued_tasks_in_a_thread()
        try:
            self._wait(lambda b: self._now_state(row) == "running",
                       "the page never showed the run going on")
            self._wait(lambda b: self._items_done(row) > 0,
                       "the page never showed records handled while the run went on")
            self._shot("04-progress")
            shown: list[str] = []

            def finished(_browser: WebDriver) -> bool:
                shown.append(self._read(f'tr[data-row="{row}"] .progress-text',
                                        "el.textContent"))
                return self._now_state(row) == "idle"

            self._wait(finished, "the page never showed the run finished")
        finally:
            worker.join(WAIT)
        assert browser.execute_script("return window.notReloaded === true;"), "page reloaded"
        last = self._read(f'tr[data-row="{row}"] [data-cell="last"]', "el.textContent")
        run = Run.objects.get(profile=profile)
        assert run.status == Run.Status.SUCCESS, run.message
        assert run.progress_done >= CONTACTS and run.crm_created == CONTACTS
        assert "Success" in last and f"created {CONTACTS}" in last
        # The progress counted all of the folder from the first page: never "100 of 100".
        totals = [int(text.split(" of ")[1].split()[0]) for text in shown if " of " in text]
        assert totals and min(totals) >= CONTACTS, shown
        self._shot("05-finished")

        browser.find_element(By.CSS_SELECTOR, f'tr[data-row="{row}"] a.status').click()
        self._wait(expected_conditions.url_contains(f"/runs/{run.pk}/"))
        assert "Sync run: Contacts" in browser.find_element(By.TAG_NAME, "h1").text
        sides = browser.find_element(By.CSS_SELECTOR, ".sides-table").text
        assert f"Created {CONTACTS} 0" in sides
        tabs = browser.find_element(By.CSS_SELECTOR, ".tabs").text
        assert "Possible duplicates (2)" in tabs
        self._shot("06-run-detail")
        browser.find_element(By.CSS_SELECTOR, ".breadcrumbs a").click()
        self._wait(expected_conditions.presence_of_element_located((By.CSS_SELECTOR,
                                                                    ".chart svg")))
        assert len(browser.find_elements(By.CSS_SELECTOR, ".chart rect.bar-items")) == 1
        self._shot("06-history")

        browser.find_element(By.LINK_TEXT, "Possible duplicates").click()
        self._wait(expected_conditions.url_contains("/duplicates/"))
        petr = Person.objects.get(first_name="Petr")
        pair = DuplicateCandidate.objects.get(profile=profile, crm_key=str(petr.pk))
        card = browser.find_element(By.ID, f"pair-{pair.pk}")
        assert "Petr Svoboda" in card.text and "info@stavby.cz" in card.text
        self._shot("07-duplicates")
        card.find_element(By.CSS_SELECTOR, "button.link-pair").click()
        message = self._wait(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".message-success")))
        assert "will be linked by the next sync" in message.text  # type: ignore[attr-defined]
        pair.refresh_from_db()
        assert pair.decision == DuplicateCandidate.Decision.LINKED
        self._shot("08-linked")

        browser.set_window_size(390, 844)   # a phone
        browser.get(f"{self.live_server_url}/")
        self._wait(expected_conditions.presence_of_element_located((By.ID, "profiles")))
        width = browser.execute_script("return document.documentElement.scrollWidth;")
        assert width <= 390, f"the dashboard is {width}px wide on a 390px phone"
        self._shot("09-dashboard-phone")
        browser.get(f"{self.live_server_url}/history/")
        self._shot("10-history-phone")

    def test_switching_to_czech_with_the_keyboard(self) -> None:
        profile = make_profile(self.sim)
        Run.objects.create(profile=profile, agenda="contacts", status=Run.Status.PARTIAL,
                           crm_created=12, remote_updated=3, errors=2)
        browser = self.browser
        self._sign_in("alice", "pw")
        self._tab_to("#language")
        # The select is changed with the arrow keys, then the button is reached with Tab.
        browser.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
        self._tab_to(".language-switch button")
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        self._wait(lambda b: b.find_element(By.TAG_NAME, "html").get_attribute("lang") == "cs")
        page = browser.find_element(By.TAG_NAME, "body").text
        for text in ("Synchronizovat nyní", "Historie synchronizace", "Možné duplicity",
                     "Úspěch s chybami", "2 chyby"):
            assert text in page, text
        self._shot("11-dashboard-czech")
        browser.find_element(By.LINK_TEXT, "Historie synchronizace").click()
        self._wait(expected_conditions.presence_of_element_located((By.CSS_SELECTOR,
                                                                    ".chart svg")))
        self._shot("12-history-czech")


    def test_the_pages_report_what_matters(self) -> None:
        """The last run that did something, why a run failed, the quiet runs folded, the
        chart's time axis, meetings in the duplicates report, many pairs decided at once,
        and a CSV a Czech Excel opens."""
        profile = make_profile(self.sim)
        now = timezone.now()
        push = Run.objects.create(profile=profile, agenda="contacts", trigger="manual",
                                  status=Run.Status.SUCCESS, remote_created=300,
                                  started=now - dt.timedelta(minutes=50),
                                  finished=now - dt.timedelta(minutes=49))
        for minutes in range(45, 9, -3):   # twelve notices that found nothing to change
            Run.objects.create(profile=profile, agenda="contacts", trigger="change",
                               status=Run.Status.SUCCESS,
                               started=now - dt.timedelta(minutes=minutes),
                               finished=now - dt.timedelta(minutes=minutes, seconds=-1))
        failed = Run.objects.create(profile=profile, agenda="calendar",
                                    status=Run.Status.FAILED,
                                    started=now - dt.timedelta(minutes=5), finished=now,
                                    message="The mailbox server refused the sign-in (401): "
                                            "check the service account's password in the "
                                            "mailbox connection. " * 4)
        person = Person.objects.create(organization_id=profile.organization_id,
                                       first_name="Petr", last_name="Svoboda",
                                       email1="info@stavby.cz", job_title="Ředitel")
        contact_pairs = [DuplicateCandidate.objects.create(
            profile=profile, crm_key=str(person.pk), remote_id=f"AAMk-{n}",
            address="info@stavby.cz", crm_title="Petr Svoboda", remote_title="Petr Svoboda",
            remote_fields={"first_name": "Petr", "last_name": "Svoboda",
                           "email1": "info@stavby.cz", "job_title": f"Director {n}"})
            for n in range(2)]
        start = now + dt.timedelta(days=1)
        event = Event.objects.create(organization_id=profile.organization_id,
                                     owner=profile.crm_user, subject="Porada", start=start,
                                     end=start + dt.timedelta(hours=1), location="Zasedačka")
        meeting = DuplicateCandidate.objects.create(
            profile=profile, agenda="calendar", crm_key=str(event.pk), remote_id="AAMk-m",
            address="the same subject and start", crm_title="Porada", remote_title="Porada",
            remote_fields={"subject": "Porada", "start": start.isoformat(),
                           "end": (start + dt.timedelta(hours=1)).isoformat(),
                           "location": "Velká zasedačka", "organizer": "boss@firma.cz"})
        browser = self.browser
        self._sign_in("alice", "pw")

        # The dashboard: the push is the last run; the failure says why, on one line.
        contacts = self._read(f'tr[data-row="{profile.pk}-contacts"] [data-cell="last"]',
                              "el.textContent")
        assert "Exchange: created 300" in contacts, contacts
        assert self._read(f'tr[data-row="{profile.pk}-contacts"] a.status',
                          "el.getAttribute('href')") == f"/runs/{push.pk}/"
        assert "Since then 12 runs after change notices found nothing to change" in contacts
        # Read in one step: the polling replaces the cell under our feet.
        why, height, line = self._read(
            f'tr[data-row="{profile.pk}-calendar"] .why',
            "[el.textContent, el.getBoundingClientRect().height,"
            " parseFloat(getComputedStyle(el).lineHeight)]")
        assert why.startswith("The mailbox server refused the sign-in (401)")
        assert height <= line * 1.5, "the reason takes more than one line"
        self._shot("13-dashboard-last-run-and-why")

        # The history: the twelve quiet runs are one row, which opens to list them.
        browser.find_element(By.LINK_TEXT, "Sync history").click()
        group = self._wait(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, "tr.quiet-runs details")))
        assert "12 runs with no changes" in group.text  # type: ignore[attr-defined]
        assert len(browser.find_elements(By.CSS_SELECTOR, "table.runs tbody > tr")) == 3
        assert not browser.find_element(By.CSS_SELECTOR, ".quiet-list").is_displayed()
        group.find_element(By.TAG_NAME, "summary").click()  # type: ignore[attr-defined]
        self._wait(lambda b: b.find_element(By.CSS_SELECTOR, ".quiet-list").is_displayed())
        assert len(browser.find_elements(By.CSS_SELECTOR, ".quiet-list li")) == 12
        self._shot("14-history-quiet-runs-opened")
        # The chart's time axis: start times under the columns, none overlapping another.
        labels = browser.execute_script(
            "return [...document.querySelectorAll('.chart text.time, .chart text.day')]"
            ".map(t => { const r = t.getBoundingClientRect();"
            " return [t.textContent, r.left, r.right, r.top, r.height,"
            " t.classList.contains('time')]; });")
        # By their class: a time on the hour has no colon ("9 a.m.").
        times = [label for label in labels if label[5]]
        newest = formats.time_format(timezone.localtime(failed.started), "TIME_FORMAT")
        assert times and times[-1][0] == newest, labels
        for first, second in itertools.pairwise(times):
            assert first[2] <= second[1], f"{first[0]} overlaps {second[0]}"
        assert all(label[4] >= 9 for label in labels), "labels too small to read"
        svg = browser.find_element(By.CSS_SELECTOR, ".chart svg").rect
        assert all(svg["x"] <= label[1] and label[2] <= svg["x"] + svg["width"]
                   for label in labels), "a label is cut off at the chart's edge"
        browser.execute_script("document.querySelector('.chart').scrollIntoView();")
        self._shot("15-history-chart-time-axis")

        # The duplicates report: the meeting as a meeting; two pairs linked at once.
        browser.find_element(By.LINK_TEXT, "Possible duplicates").click()
        card = self._wait(expected_conditions.presence_of_element_located(
            (By.ID, f"pair-{meeting.pk}")))
        text = card.text  # type: ignore[attr-defined]
        for expected in ("Possibly the same meeting: Porada", "Organizer", "boss@firma.cz",
                         "Velká zasedačka", "Zasedačka", "Fields that differ: Location"):
            assert expected in text, expected
        assert "Shared address" not in text
        self._shot("16-duplicates-meeting")
        for pair in contact_pairs:
            browser.find_element(By.ID, f"select-{pair.pk}").click()
        browser.find_element(By.CSS_SELECTOR, "button.link-selected").click()
        message = self._wait(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".message-success")))
        assert "2 pairs will be linked by the next sync" in message.text  # type: ignore[attr-defined]
        decisions = {pair.pk: pair.decision for pair in DuplicateCandidate.objects.all()}
        assert [decisions[pair.pk] for pair in contact_pairs] == ["linked", "linked"]
        assert decisions[meeting.pk] == "open"
        self._shot("17-duplicates-linked-selected")
        # "All on this page" ticks what is left (the meeting), kept apart in one go.
        browser.find_element(By.ID, "select-all").click()
        assert browser.find_element(By.ID, f"select-{meeting.pk}").is_selected()
        browser.find_element(By.CSS_SELECTOR, "button.keep-apart-selected").click()
        # The page before the click has a message of its own: wait until it is gone.
        self._until_gone(message)
        message = self._wait(expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, ".message-success")))
        assert "1 pair will be kept apart" in message.text  # type: ignore[attr-defined]
        meeting.refresh_from_db()
        assert meeting.decision == "apart"

        # On a phone the pages fit the screen's width.
        browser.set_window_size(390, 844)
        for page, shot in (("/history/", "18-history-phone"),
                           ("/duplicates/?show=all", "19-duplicates-phone")):
            browser.get(f"{self.live_server_url}{page}")
            width = browser.execute_script("return document.documentElement.scrollWidth;")
            assert width <= 390, f"{page} is {width}px wide on a 390px phone"
            self._shot(shot)

        # The history as CSV, in Czech: what a Czech Excel opens as it is.
        Select(browser.find_element(By.ID, "language")).select_by_value("cs")
        browser.find_element(By.CSS_SELECTOR, ".language-switch button").click()
        self._wait(lambda b: b.find_element(By.TAG_NAME, "html").get_attribute("lang") == "cs")
        head = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/history/export.csv').then(r => r.arrayBuffer()).then(b => {"
            " const bytes = new Uint8Array(b);"
            " done([[...bytes.slice(0, 3)], new TextDecoder().decode(bytes.slice(3))]); });")
        assert head[0] == [0xEF, 0xBB, 0xBF], "no byte order mark"
        first_row = head[1].splitlines()[1].split(";")
        assert len(first_row) == 21 and first_row[3] == "300,0", first_row   # 5 minutes

    def test_sync_now_on_a_paused_profile_says_it_is_paused(self) -> None:
        from engine import pausing

        profile = make_profile(self.sim)
        pausing.set_paused([profile], True)
        browser = self.browser
        self._sign_in("alice", "pw")
        assert "Paused by the administrator" in browser.find_element(By.ID, "profiles").text
        self._tab_to("button.sync-now")
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        self._wait(expected_conditions.presence_of_element_located((By.CSS_SELECTOR,
                                                                    ".messages")))
        messages = browser.find_element(By.CSS_SELECTOR, ".messages").text
        assert f"{profile.mailbox} is paused by your administrator: nothing was queued" \
            in messages, messages
        assert not OrmQ.objects.exists()
        self._shot("13-sync-now-paused")
