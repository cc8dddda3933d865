"""An Exchange Online (Microsoft Graph) connection made in the admin, with a client secret or
a certificate pasted into the secret field, and tested there against ewsim's Graph side."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse

from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
from profiles.models import MailboxConnection
from tests.engine.mailbox.graph_access import CLIENT_ID, CLIENT_SECRET, TENANT, add_app
from tests.engine.test_graph_diagnose import _certificate
from tests.profiles.ewsim_cases import EwsimAdminTestCase

CONNECTIONS = "/admin/profiles/mailboxconnection/"


class GraphConnectionAdminTestCase(EwsimAdminTestCase):
    def _add(self, secret: str, **fields: Any) -> HttpResponse:
        add_app(self.sim)
        data = {"name": "Acme 365", "kind": "graph", "graph_url": self.sim.graph_url,
                "server_version": "", "auth_type": "oauth2", "access": "impersonation",
                # The mailbox a test opens: app-only access has no account of its own.
                "graph_mailbox": self.sim.user, "secret": secret, "tenant_id": TENANT,
                "client_id": CLIENT_ID,
                "token_url": f"{self.sim.https_base_url}/{TENANT}/oauth2/v2.0/token", **fields}
        return self.client.post(CONNECTIONS + "add/", data)

    def _test(self, connection: MailboxConnection) -> list[tuple[str, str]]:
        response = self.client.post(CONNECTIONS, {
            "action": "test_connection", "_selected_action": [connection.pk]}, follow=True)
        return self.messages_of(response)

    def test_a_connection_with_a_client_secret_is_saved_and_works(self) -> None:
        self.client.force_login(self.bob)
        response = self._add(CLIENT_SECRET)
        self.assertEqual(response.status_code, 302, response.content[:3000])
        connection = MailboxConnection.objects.get(name="Acme 365")
        self.assertEqual(connection.get_kind_display(), "Exchange Online (Microsoft Graph)")
        level, text = self._test(connection)[-1]   # after the add page's own message
        self.assertEqual(level, "success", text)
        self.assertIn("Microsoft Graph v1.0", text)

    def test_a_certificate_pasted_into_the_password_field_signs_in(self) -> None:
        # A password field drops the line breaks of what is pasted into it.
        key, cert = _certificate()
        self.client.force_login(self.bob)
        response = self._add((key + cert).replace("\n", ""))
        self.assertEqual(response.status_code, 302, response.content[:3000])
        self.sim.control.set_app(CLIENT_ID, certificate=cert, client_secret="")
        level, text = self._test(MailboxConnection.objects.get(name="Acme 365"))[-1]
        self.assertEqual(level, "success", text)

    def test_an_unreadable_certificate_is_refused_and_nothing_is_saved(self) -> None:
        key, cert = _certificate()
        broken = key.replace(key.splitlines()[3], "x" * 64) + cert
        self.client.force_login(self.bob)
        response = self._add(broken)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "The certificate cannot be read")
        self.assertFalse(MailboxConnection.objects.filter(name="Acme 365").exists())
