"""A stored secret follows only its own endpoint: whoever may edit a connection cannot point it
at a server of their own and have the server send it the password they were never shown.

A recording server (on the loopback address the suite allows) keeps every request it gets,
headers and body; Basic authentication carries the password readably, so a search of what
it recorded finds the secret if it was sent.
"""

from __future__ import annotations

import base64
import http.server
import threading
from typing import Any

from django.test import override_settings

from engine.mailbox.diagnose import connection_target, run
from profiles.models import MailboxConnection
from tests.base import BaseTestCase

SECRET = "Old-Secret-9fQ2-endpoint"


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(f"{self.headers}\n{body.decode('latin-1')}")
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="x"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


class SecretFollowsEndpointTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        handler = type("Handler", (_Recorder,), {"seen": []})
        self.recorded: list[str] = handler.seen
        self.recorder = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.recorder.serve_forever, daemon=True).start()
        self.addCleanup(self.recorder.server_close)
        self.addCleanup(self.recorder.shutdown)
        self.elsewhere = f"http://127.0.0.1:{self.recorder.server_port}/EWS/Exchange.asmx"
        self.connection = self.make_connection(self.acme, auth_type="basic",
                                               username="svc@acme.example")
        self.connection.set_secret(SECRET)
        self.connection.save()
        self.client.force_login(self.bob)

    def _post(self, **changes: Any) -> Any:
        data = {"name": self.connection.name, "kind": "ews",
                "ews_url": self.connection.ews_url, "server_version": "", "verify_tls": "on",
                "auth_type": "basic", "access": "impersonation",
                "username": self.connection.username, "secret": "", "tenant_id": "",
                "client_id": "", "token_url": ""}
        data.update(changes)
        data = {key: value for key, value in data.items() if value is not None}
        return self.client.post(
            f"/admin/profiles/mailboxconnection/{self.connection.pk}/change/", data)

    def _secret_reached_the_recorder(self) -> bool:
        basic = base64.b64encode(f"svc@acme.example:{SECRET}".encode()).decode()
        return any(SECRET in text or basic in text for text in self.recorded)

    def test_the_form_says_so_next_to_the_secret(self) -> None:
        page = self.client.get(f"/admin/profiles/mailboxconnection/{self.connection.pk}/change/")
        self.assertContains(page, "A stored secret is only sent where it was entered for")

    def test_a_new_url_without_the_secret_again_is_not_saved_and_nothing_reaches_it(
            self) -> None:
        answer = self._post(ews_url=self.elsewhere)
        self.assertEqual(answer.status_code, 200)
        self.assertContains(answer, "address or sign-in changed: enter its password")
        self.connection.refresh_from_db()
        self.assertNotEqual(self.connection.ews_url, self.elsewhere)
        self.assertEqual(self.connection.get_secret(), SECRET)

        self.client.post(
            f"/admin/profiles/mailboxconnection/{self.connection.pk}/test-connection/")
        self.assertFalse(self._secret_reached_the_recorder())

    def test_the_secret_entered_again_goes_with_the_new_url(self) -> None:
        answer = self._post(ews_url=self.elsewhere, secret=SECRET)
        self.assertEqual(answer.status_code, 302, answer.content.decode()[:2000])
        self.connection.refresh_from_db()
        self.assertEqual((self.connection.ews_url, self.connection.get_secret()),
                         (self.elsewhere, SECRET))
        run(connection_target(self.connection))
        self.assertTrue(self._secret_reached_the_recorder(), "the search can find it")

    def test_each_part_of_the_endpoint_drops_the_stored_secret(self) -> None:
        for field, value in (("ews_url", self.elsewhere), ("username", "other@acme.example"),
                             ("auth_type", "ntlm"), ("kind", "graph"),
                             ("token_url", "https://login.example.org/t"),
                             ("tenant_id", "contoso.onmicrosoft.com"),
                             ("client_id", "5b4f2a6e-1c3d-4e8f-9a0b-7c6d5e4f3a2b"),
                             ("verify_tls", False)):
            with self.subTest(field=field):
                connection = MailboxConnection.objects.get(pk=self.connection.pk)
                connection.set_secret(SECRET)
                connection.save()
                connection = MailboxConnection.objects.get(pk=self.connection.pk)
                setattr(connection, field, value)
                connection.save()   # not through the form: the model itself drops it
                connection.refresh_from_db()
                self.assertFalse(connection.has_secret)
                MailboxConnection.objects.filter(pk=connection.pk).update(
                    **{field: getattr(self.connection, field)})

    def test_a_saved_new_url_tested_gets_no_old_secret(self) -> None:
        connection = MailboxConnection.objects.get(pk=self.connection.pk)
        connection.ews_url = self.elsewhere
        connection.save()
        report = run(connection_target(MailboxConnection.objects.get(pk=connection.pk)))
        self.assertFalse(report.ok)
        self.assertTrue(self.recorded, "the test did reach the new URL")
        self.assertFalse(self._secret_reached_the_recorder())

    def test_unchanged_settings_and_turning_verification_on_keep_the_secret(self) -> None:
        answer = self._post(name="Renamed")
        self.assertEqual(answer.status_code, 302, answer.content.decode()[:2000])
        connection = MailboxConnection.objects.get(pk=self.connection.pk)
        self.assertEqual(connection.get_secret(), SECRET)
        MailboxConnection.objects.filter(pk=connection.pk).update(verify_tls=False)
        connection = MailboxConnection.objects.get(pk=self.connection.pk)
        connection.verify_tls = True
        connection.save()
        self.assertEqual(MailboxConnection.objects.get(pk=connection.pk).get_secret(), SECRET)

    @override_settings(MAILBOX_ALLOWED_NETWORKS=["127.0.0.0/8"])
    def test_profiles_own_passwords_follow_their_connection_and_user_name(self) -> None:
        per_user = self.make_connection(self.acme, name="Per user", access="per_user",
                                        auth_type="basic", username="")
        profile = self.make_profile(self.acme, self.dave, "dave@acme.example",
                                    connection=per_user, mailbox_username="dave@acme.example")
        profile.set_mailbox_secret(SECRET)
        profile.save()

        profile.mailbox_username = "someone@acme.example"
        profile.save()
        profile.refresh_from_db()
        self.assertFalse(profile.has_mailbox_secret, "a new user name drops it")

        profile.mailbox_username = "dave@acme.example"
        profile.set_mailbox_secret(SECRET)
        profile.save()
        other = self.make_connection(self.acme, name="Other", access="per_user",
                                     auth_type="basic", username="")
        profile.connection = other
        profile.save()
        profile.refresh_from_db()
        self.assertFalse(profile.has_mailbox_secret, "another connection drops it")

        profile.connection = per_user
        profile.set_mailbox_secret(SECRET)
        profile.save()
        per_user = MailboxConnection.objects.get(pk=per_user.pk)
        per_user.ews_url = self.elsewhere
        per_user.save()
        profile.refresh_from_db()
        self.assertFalse(profile.has_mailbox_secret,
                         "the connection's new address drops its profiles' passwords too")
