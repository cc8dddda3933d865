"""The mailbox connection form keeps only what applies to the chosen kind: a Graph connection
needs no EWS URL, NTLM or service account, and an EWS one keeps no Entra ID app it does not
sign in with."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse

from engine.mailbox.diagnose import connection_target
from profiles.models import MailboxConnection
from tests.base import BaseTestCase

ADD = "/admin/profiles/mailboxconnection/add/"
TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"


class ConnectionKindFormTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.client.force_login(self.bob)

    def _add(self, **fields: Any) -> HttpResponse:
        return self.client.post(ADD, {"name": "Acme", **fields})

    def test_a_graph_connection_is_saved_without_the_ews_and_ntlm_fields(self) -> None:
        response = self._add(kind="graph", tenant_id=TENANT, client_id=CLIENT,
                             secret="client-secret", verify_tls="on")
        self.assertEqual(response.status_code, 302, response.content[-3000:])
        connection = MailboxConnection.objects.get(name="Acme")
        self.assertEqual(
            (connection.auth_type, connection.access, connection.ews_url, connection.username),
            ("oauth2", "impersonation", "", ""))

    def test_ews_values_left_in_the_hidden_fields_are_not_kept_for_graph(self) -> None:
        response = self._add(
            kind="graph", ews_url="https://mail.example.org/EWS/Exchange.asmx",
            server_version="Exchange2016", auth_type="ntlm", access="per_user",
            username="EXAMPLE\\svc-sync", graph_url="graph.example.org/v1.0",
            graph_mailbox="test@acme.example", tenant_id=TENANT, client_id=CLIENT,
            secret="client-secret")
        self.assertEqual(response.status_code, 302, response.content[-3000:])
        connection = MailboxConnection.objects.get(name="Acme")
        self.assertEqual(
            (connection.ews_url, connection.username, connection.auth_type, connection.access,
             connection.server_version),
            ("https://graph.example.org/v1.0", "test@acme.example", "oauth2", "impersonation",
             ""))

    def test_a_bad_value_in_a_hidden_field_does_not_stop_the_save(self) -> None:
        response = self._add(kind="graph", ews_url="not a url", tenant_id=TENANT,
                             client_id=CLIENT, secret="client-secret")
        self.assertEqual(response.status_code, 302, response.content[-3000:])
        response = self._add(
            name="Acme EWS", kind="ews", ews_url="https://mail.example.org/EWS/Exchange.asmx",
            auth_type="basic", username="svc@acme.example", secret="service-password",
            token_url="not a url", graph_url="not a url either")
        self.assertEqual(response.status_code, 302, response.content[-3000:])
        self.assertEqual(MailboxConnection.objects.get(name="Acme EWS").token_url, "")

    def test_an_ews_connection_with_ntlm_keeps_no_entra_app(self) -> None:
        response = self._add(
            kind="ews", ews_url="https://mail.example.org/EWS/Exchange.asmx", auth_type="ntlm",
            access="impersonation", username="EXAMPLE\\svc-sync", secret="service-password",
            tenant_id=TENANT, client_id=CLIENT, token_url="https://login.example.org/token",
            graph_url="https://graph.example.org/v1.0", graph_mailbox="x@acme.example")
        self.assertEqual(response.status_code, 302, response.content[-3000:])
        connection = MailboxConnection.objects.get(name="Acme")
        self.assertEqual((connection.tenant_id, connection.client_id, connection.token_url),
                         ("", "", ""))
        self.assertEqual((connection.ews_url, connection.username),
                         ("https://mail.example.org/EWS/Exchange.asmx", "EXAMPLE\\svc-sync"))

    def test_an_ews_connection_still_needs_its_ews_url(self) -> None:
        response = self._add(kind="ews", auth_type="ntlm", access="impersonation",
                             username="EXAMPLE\\svc-sync", secret="service-password",
                             graph_url="https://graph.example.org/v1.0")
        self.assertContains(response, "An Exchange Server connection needs its EWS URL.")
        self.assertFalse(MailboxConnection.objects.exists())

    def test_a_graph_connections_page_shows_its_url_in_the_graph_field(self) -> None:
        connection = self.make_connection(
            self.acme, kind="graph", auth_type="oauth2", ews_url="https://graph.example.org/v1.0",
            username="test@acme.example", tenant_id=TENANT, client_id=CLIENT)
        page = self.client.get(f"/admin/profiles/mailboxconnection/{connection.pk}/change/")
        self.assertContains(page, 'name="graph_url" value="https://graph.example.org/v1.0"')
        self.assertContains(page, 'name="graph_mailbox" value="test@acme.example"')
        self.assertContains(page, '<input type="url" name="ews_url"')
        self.assertNotContains(page, 'name="ews_url" value=')
        self.assertContains(page, "connection-kind-ews")
        self.assertContains(page, "profiles/connection_kind.js")

    def test_a_graph_connection_without_a_mailbox_to_test_with_names_that_field(self) -> None:
        self._add(kind="graph", tenant_id=TENANT, client_id=CLIENT, secret="client-secret",
                  verify_tls="on")
        target = connection_target(MailboxConnection.objects.get(name="Acme"))
        self.assertIsNone(target.access)
        self.assertIn("“Mailbox to test with”", target.problem)
        self.assertNotIn("user name", target.problem)
