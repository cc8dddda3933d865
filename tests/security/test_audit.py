"""The audit log of connections and profiles: who, when, what; secrets never in it."""

from __future__ import annotations

import json
from typing import Any

from profiles.models import AuditEntry, MailboxConnection
from tests.base import BaseTestCase

CONNECTIONS = "/admin/profiles/mailboxconnection/"
AUDIT = "/admin/profiles/auditentry/"
NEW_SECRET = "N3w-Audit-Secret-q7Zp"


def connection_form(name: str, secret: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "kind": "ews", "ews_url": "https://mail.acme.example/EWS/Exchange.asmx",
            "server_version": "", "verify_tls": "on", "auth_type": "ntlm",
            "access": "impersonation", "username": "ACME\\svc-sync", "secret": secret,
            "tenant_id": "", "client_id": "", "token_url": "", **fields}


class AuditLogTests(BaseTestCase):
    def _entries(self, **filters: Any) -> list[AuditEntry]:
        return list(AuditEntry.objects.filter(**filters).order_by("id"))

    def assert_no_secret(self, entry: AuditEntry, *secrets: str) -> None:
        text = json.dumps(entry.changes) + entry.object_repr
        for secret in secrets:
            assert secret not in text

    def test_an_organization_admin_creating_a_connection_is_logged_with_who_and_what(
            self) -> None:
        self.client.force_login(self.bob)
        answer = self.client.post(CONNECTIONS + "add/", connection_form("Acme EWS", NEW_SECRET))
        assert answer.status_code == 302, answer.content.decode()[:2000]
        connection = MailboxConnection.objects.get(name="Acme EWS")

        (entry,) = self._entries(object_type="mailbox connection", object_id=str(connection.pk))
        assert (entry.action, entry.actor, entry.actor_name) == ("create", self.bob, "bob")
        assert entry.organization == self.acme
        assert entry.changes["name"] == "Acme EWS"
        assert entry.changes["secret"] == "set"
        assert "secret_token" not in entry.changes
        self.assert_no_secret(entry, NEW_SECRET, connection.secret_token)

    def test_a_changed_secret_is_logged_as_changed_and_nothing_more(self) -> None:
        connection = self.make_connection(self.acme, name="Acme EWS")
        self.client.force_login(self.bob)
        answer = self.client.post(f"{CONNECTIONS}{connection.pk}/change/",
                                  connection_form("Acme EWS", NEW_SECRET, verify_tls="",
                                                  ews_url=connection.ews_url,
                                                  username=connection.username))
        assert answer.status_code == 302, answer.content.decode()[:2000]
        connection.refresh_from_db()

        entry = self._entries(action="change", object_id=str(connection.pk))[-1]
        assert entry.actor_name == "bob"
        assert entry.changes == {"verify_tls": {"from": True, "to": False}, "secret": "changed"}
        self.assert_no_secret(entry, NEW_SECRET, "service-password", connection.secret_token)

    def test_saving_without_a_change_writes_nothing(self) -> None:
        connection = self.make_connection(self.acme)
        before = AuditEntry.objects.count()
        connection.save()
        assert AuditEntry.objects.count() == before

    def test_a_change_outside_a_request_is_the_servers(self) -> None:
        profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        profile.interval_minutes = 30
        profile.save()
        entry = self._entries(action="change", object_type="sync profile")[-1]
        assert entry.actor is None and entry.actor_name == ""
        assert entry.changes == {"interval_minutes": {"from": 10, "to": 30}}

    def test_agenda_settings_changes_and_deletions_are_logged(self) -> None:
        profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        settings = profile.contactsettings
        settings.direction = "import"
        settings.save()
        (change,) = self._entries(object_type="contact settings")
        assert change.action == "change" and change.organization == self.acme
        assert change.changes == {"direction": {"from": "two_way", "to": "import"}}
        assert change.object_repr.startswith("dave@acme.example")

        profile_id = profile.pk
        profile.delete()
        (deleted,) = self._entries(action="delete", object_type="sync profile")
        assert deleted.object_id == str(profile_id)
        assert deleted.object_repr == "dave@acme.example"

    def test_deleting_an_organization_keeps_the_entries_of_its_connections(self) -> None:
        connection = self.make_connection(self.globex)
        self.globex.delete()
        entries = self._entries(object_id=str(connection.pk), object_type="mailbox connection")
        assert [e.action for e in entries] == ["create", "delete"]


class AuditLogAdminTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.acme_connection = self.make_connection(self.acme, name="Acme EWS")
        self.globex_connection = self.make_connection(self.globex, name="Globex EWS")
        self.acme_entry = AuditEntry.objects.get(object_id=str(self.acme_connection.pk))
        self.globex_entry = AuditEntry.objects.get(object_id=str(self.globex_connection.pk))

    def test_an_organization_admin_sees_only_their_organizations_entries(self) -> None:
        self.client.force_login(self.bob)
        page = self.client.get(AUDIT)
        assert page.status_code == 200
        assert "Acme EWS" in page.content.decode()
        assert "Globex EWS" not in page.content.decode()
        assert self.client.get(f"{AUDIT}{self.acme_entry.pk}/change/").status_code == 200
        assert self.client.get(f"{AUDIT}{self.globex_entry.pk}/change/").status_code == 404

    def test_the_log_is_read_only_even_for_a_superuser(self) -> None:
        self.client.force_login(self.alice)
        assert self.client.get(f"{AUDIT}{self.globex_entry.pk}/change/").status_code == 200
        assert self.client.get(AUDIT + "add/").status_code == 403
        assert self.client.get(f"{AUDIT}{self.acme_entry.pk}/delete/").status_code == 403
        answer = self.client.post(f"{AUDIT}{self.acme_entry.pk}/change/", {"actor_name": "x"})
        assert answer.status_code == 403
        self.acme_entry.refresh_from_db()
        assert self.acme_entry.actor_name == ""

    def test_a_plain_user_has_no_access(self) -> None:
        self.client.force_login(self.dave)
        assert self.client.get(AUDIT).status_code == 302   # to the admin's sign-in
