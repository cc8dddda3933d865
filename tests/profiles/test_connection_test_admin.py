"""The admin's "Test connection": an action on connections and profiles, and a change-page
button, against ewsim, confined to the administrator's organization; a POST from our own page
only, so no other site can make it reach out."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from django.http import HttpResponse
from django.test import Client

from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import MailboxConnection, SyncProfile
from tests.profiles.ewsim_cases import SERVICE, EwsimAdminTestCase

CONNECTIONS = "/admin/profiles/mailboxconnection/"
PROFILES = "/admin/profiles/syncprofile/"


class _FormFields(HTMLParser):
    """The hidden fields of the page's forms, by each form's action."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self._action: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self._action = attributes.get("action") or ""
            self.forms[self._action] = {"method": attributes.get("method") or "get"}
        elif tag == "input" and self._action is not None and attributes.get("name"):
            self.forms[self._action][str(attributes["name"])] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._action = None


def form_posting_to(page: HttpResponse, action: str) -> dict[str, str]:
    parser = _FormFields()
    parser.feed(page.content.decode())
    return parser.forms[action]


class ConnectionTestAdminTestCase(EwsimAdminTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connection = self.ews_connection(self.acme, name="Acme Exchange")
        self.foreign_connection = self.ews_connection(self.globex, name="Globex Exchange")
        self.foreign_profile = self.make_profile(self.globex, self.charlie,
                                                 "charlie@globex.example",
                                                 connection=self.foreign_connection)

    def _action(self, changelist: str, *objects: Any) -> HttpResponse:
        return self.client.post(changelist, {
            "action": "test_connection", "_selected_action": [o.pk for o in objects]},
            follow=True)

    # --- connections ---------------------------------------------------------------------
    def test_a_working_connection_reports_success_with_the_server_version(self) -> None:
        self.client.force_login(self.bob)
        response = self._action(CONNECTIONS, self.connection)
        self.assertEqual(response.redirect_chain, [(CONNECTIONS, 302)])
        [(level, text)] = self.messages_of(response)
        self.assertEqual(level, "success")
        self.assertIn("“Acme Exchange”: The connection works", text)
        self.assertIn("Exchange2016", text)
        self.assertIn(f"Tested with the mailbox {SERVICE}", text)

    def test_a_wrong_password_is_reported_as_an_error_in_plain_words(self) -> None:
        self.connection.set_secret("wrong")
        self.connection.save()
        self.client.force_login(self.bob)
        [(level, text)] = self.messages_of(self._action(CONNECTIONS, self.connection))
        self.assertEqual(level, "error")
        self.assertIn("Authentication failed", text)

    def test_each_selected_connection_gets_its_own_answer(self) -> None:
        broken = self.ews_connection(self.acme, name="Acme old server",
                                     ews_url="http://nonexistent.invalid/EWS/Exchange.asmx")
        self.client.force_login(self.alice)
        answers = dict((text.split(":")[0], level) for level, text in self.messages_of(
            self._action(CONNECTIONS, self.connection, broken, self.foreign_connection)))
        self.assertEqual(answers, {"“Acme Exchange”": "success", "“Acme old server”": "error",
                                   "“Globex Exchange”": "success"})

    def test_a_domain_account_is_tested_on_the_first_profile_using_the_connection(self) -> None:
        self.sim.control.add_user("svc2@example.com", "svc2-secret", domain="EXAMPLE",
                                  account="svc2", can_impersonate=["bob@acme.example"])
        connection = self.ews_connection(self.acme, name="domain account",
                                         username="EXAMPLE\\svc2", password="svc2-secret",
                                         auth_type=MailboxConnection.Auth.NTLM)
        self.make_profile(self.acme, self.dave, "bob@acme.example", connection=connection)
        self.client.force_login(self.bob)
        [(level, text)] = self.messages_of(self._action(CONNECTIONS, connection))
        self.assertEqual(level, "success", text)
        self.assertIn("Tested with the mailbox bob@acme.example", text)

    def test_a_connection_with_no_mailbox_to_open_says_what_to_enter_without_calling_out(
            self) -> None:
        connection = self.ews_connection(self.acme, name="domain account",
                                         username="EXAMPLE\\svc-sync")
        self.sim.control.reset_counters()
        self.client.force_login(self.bob)
        [(level, text)] = self.messages_of(self._action(CONNECTIONS, connection))
        self.assertEqual(level, "error")
        self.assertIn("write the service account's user name as an e-mail address", text)
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_a_per_user_connection_without_profiles_points_to_the_profiles(self) -> None:
        connection = self.ews_connection(self.acme, name="per user", username="",
                                         access=MailboxConnection.Access.PER_USER)
        self.client.force_login(self.bob)
        [(level, text)] = self.messages_of(self._action(CONNECTIONS, connection))
        self.assertEqual(level, "error")
        self.assertIn("each profile's own credentials", text)

    def test_an_organization_admin_cannot_test_another_organizations_connection(self) -> None:
        self.sim.control.reset_counters()
        self.client.force_login(self.bob)
        response = self._action(CONNECTIONS, self.foreign_connection)
        self.assertNotIn("Globex", " ".join(text for _, text in self.messages_of(response)))
        self.assertEqual(self.requests_to_exchange(), 0)
        page = self.client.post(f"{CONNECTIONS}{self.foreign_connection.pk}/test-connection/")
        self.assertEqual(page.status_code, 404)
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_the_change_page_has_a_test_connection_button_that_posts_and_reports_back(
            self) -> None:
        client = Client(enforce_csrf_checks=True)
        client.force_login(self.bob)
        change = f"{CONNECTIONS}{self.connection.pk}/change/"
        button = f"{CONNECTIONS}{self.connection.pk}/test-connection/"
        form = form_posting_to(client.get(change), button)
        self.assertEqual(form["method"], "post")
        response = client.post(button, {
            "csrfmiddlewaretoken": form["csrfmiddlewaretoken"]}, follow=True)
        self.assertEqual(response.redirect_chain, [(change, 302)])
        [message] = response.context["messages"]
        self.assertEqual(message.level_tag, "success")
        self.assertIn("The connection works", str(message))

    def test_a_get_of_the_test_is_refused_and_sends_nothing_to_the_server(self) -> None:
        profile = self.make_profile(self.acme, self.dave, "bob@acme.example",
                                    connection=self.connection)
        self.client.force_login(self.bob)
        self.sim.control.reset_counters()
        for url in (f"{CONNECTIONS}{self.connection.pk}/test-connection/",
                    f"{PROFILES}{profile.pk}/test-connection/"):
            with self.subTest(url=url):
                self.assertEqual(self.client.get(url).status_code, 405)
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_another_site_can_neither_get_nor_post_the_test_without_the_csrf_token(
            self) -> None:
        profile = self.make_profile(self.acme, self.dave, "bob@acme.example",
                                    connection=self.connection)
        client = Client(enforce_csrf_checks=True)   # a real browser: the check is not skipped
        client.force_login(self.bob)
        self.sim.control.reset_counters()
        for url in (f"{CONNECTIONS}{self.connection.pk}/test-connection/",
                    f"{PROFILES}{profile.pk}/test-connection/"):
            with self.subTest(url=url):
                self.assertEqual(client.get(url).status_code, 405)   # an <img src>, a link
                self.assertEqual(client.post(url).status_code, 403)  # a form on another site
        self.assertEqual(self.requests_to_exchange(), 0)

    def test_the_add_page_has_no_test_button(self) -> None:
        self.client.force_login(self.bob)
        self.assertNotContains(self.client.get(f"{CONNECTIONS}add/"), "test-connection")

    # --- profiles ----------------------------------------------------------------------------
    def test_a_profile_is_tested_on_its_own_mailbox(self) -> None:
        profile = self.make_profile(self.acme, self.dave, "bob@acme.example",
                                    connection=self.connection)
        self.client.force_login(self.bob)
        [(level, text)] = self.messages_of(self._action(PROFILES, profile))
        self.assertEqual(level, "success", text)
        self.assertIn("“bob@acme.example”: The connection works", text)
        self.assertIn("opened the mailbox bob@acme.example", text)

    def test_a_service_account_without_the_right_is_told_impersonation_is_denied(self) -> None:
        self.sim.control.add_user("limited@example.com", "limited-secret", can_impersonate=[])
        connection = self.ews_connection(self.acme, name="limited",
                                         username="limited@example.com",
                                         password="limited-secret")
        profile = self.make_profile(self.acme, self.dave, "bob@acme.example",
                                    connection=connection)
        self.client.force_login(self.bob)
        [(level, text)] = self.messages_of(self._action(PROFILES, profile))
        self.assertEqual(level, "error")
        self.assertIn("may not impersonate bob@acme.example", text)

    def test_a_profile_whose_mailbox_does_not_exist_is_told_so(self) -> None:
        profile = self.make_profile(self.acme, self.dave, "gone@acme.example",
                                    connection=self.connection)
        self.client.force_login(self.bob)
        [(level, text)] = self.messages_of(self._action(PROFILES, profile))
        self.assertEqual(level, "error")
        self.assertIn("There is no mailbox gone@acme.example", text)

    def test_a_profile_on_a_per_user_connection_signs_in_with_its_own_credentials(self) -> None:
        connection = self.ews_connection(self.acme, name="per user", username="",
                                         access=MailboxConnection.Access.PER_USER)
        profile = self.make_profile(self.acme, self.dave, "bob@acme.example",
                                    connection=connection, mailbox_username="bob@acme.example")
        profile.set_mailbox_secret("bob-secret")
        profile.save()
        self.client.force_login(self.bob)
        [(level, text)] = self.messages_of(self._action(PROFILES, profile))
        self.assertEqual(level, "success", text)
        profile.set_mailbox_secret("wrong")
        profile.save()
        [(level, text)] = self.messages_of(self._action(PROFILES, profile))
        self.assertEqual(level, "error")
        self.assertIn("'bob@acme.example'", text)

    def test_the_profile_change_page_button_tests_it_and_a_foreign_one_is_not_found(
            self) -> None:
        profile = self.make_profile(self.acme, self.dave, "bob@acme.example",
                                    connection=self.connection)
        self.client.force_login(self.bob)
        change = f"{PROFILES}{profile.pk}/change/"
        button = f"{PROFILES}{profile.pk}/test-connection/"
        self.assertEqual(form_posting_to(self.client.get(change), button)["method"], "post")
        response = self.client.post(button, follow=True)
        self.assertEqual(response.redirect_chain, [(change, 302)])
        self.assertEqual([m.level_tag for m in response.context["messages"]], ["success"])
        self.sim.control.reset_counters()
        foreign = self.client.post(f"{PROFILES}{self.foreign_profile.pk}/test-connection/")
        self.assertEqual(foreign.status_code, 404)
        self.assertEqual(self.requests_to_exchange(), 0)
        self.assertTrue(SyncProfile.objects.filter(pk=self.foreign_profile.pk).exists())
