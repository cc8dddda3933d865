from __future__ import annotations

import io

from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection as db
from django.test import override_settings

from profiles.checks import check_encryption_keys
from profiles.models import MailboxConnection
from profiles.secrets import SecretKeyError
from tests.base import BaseTestCase

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def _stored_token(connection_id: int) -> str:
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT secret_token FROM {MailboxConnection._meta.db_table} WHERE id = %s",
            [connection_id],
        )
        return cursor.fetchone()[0]


class SecretStorageTestCase(BaseTestCase):
    def test_the_database_column_never_holds_the_plaintext(self) -> None:
        connection = self.make_connection(self.acme)
        connection.set_secret("Tr0ub4dor&3-unique")
        connection.save()

        stored = _stored_token(connection.id)
        self.assertNotIn("Tr0ub4dor", stored)
        self.assertTrue(stored.startswith("gAAAA"))  # a Fernet token
        connection.refresh_from_db()
        self.assertEqual(connection.get_secret(), "Tr0ub4dor&3-unique")

    def test_the_admin_never_renders_the_secret_back(self) -> None:
        connection = self.make_connection(self.acme)
        self.client.force_login(self.alice)
        page = self.client.get(f"/admin/profiles/mailboxconnection/{connection.id}/change/")
        self.assertEqual(page.status_code, 200)
        self.assertNotContains(page, "service-password")
        self.assertNotContains(page, connection.secret_token)
        self.assertContains(page, "A secret is stored (encrypted). Leave blank to keep it.")

    def _post_connection(self, connection: MailboxConnection, secret: str) -> None:
        response = self.client.post(
            f"/admin/profiles/mailboxconnection/{connection.id}/change/",
            {
                "organization": self.acme.id,
                "name": connection.name,
                "kind": "ews",
                "ews_url": connection.ews_url,
                "server_version": "",
                "verify_tls": "on",
                "auth_type": "ntlm",
                "access": "impersonation",
                "username": connection.username,
                "secret": secret,
                "tenant_id": "",
                "client_id": "",
                "token_url": "",
            },
        )
        self.assertEqual(response.status_code, 302, response.content.decode()[:3000])

    def test_a_blank_secret_field_keeps_the_stored_secret(self) -> None:
        connection = self.make_connection(self.acme)
        self.client.force_login(self.alice)
        self._post_connection(connection, "")
        connection.refresh_from_db()
        self.assertEqual(connection.get_secret(), "service-password")

    def test_a_new_secret_replaces_the_stored_one(self) -> None:
        connection = self.make_connection(self.acme)
        self.client.force_login(self.alice)
        self._post_connection(connection, "new-password")
        connection.refresh_from_db()
        self.assertEqual(connection.get_secret(), "new-password")


class KeyRotationTestCase(BaseTestCase):
    def test_rotation_reencrypts_every_secret_with_the_first_key(self) -> None:
        with override_settings(ENCRYPTION_KEYS=[OLD_KEY]):
            connection = self.make_connection(self.acme)
            profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
            profile.set_mailbox_secret("dave-password")
            profile.save()
            old_token = _stored_token(connection.id)
            self.acme.set_share_secret("share-password")
            self.acme.save()
            old_share_token = self.acme.share_secret

        with override_settings(ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]):
            call_command("rotate_secrets", stdout=io.StringIO())

        self.assertNotEqual(_stored_token(connection.id), old_token)
        with override_settings(ENCRYPTION_KEYS=[NEW_KEY]):
            connection.refresh_from_db()
            profile.refresh_from_db()
            self.assertEqual(connection.get_secret(), "service-password")
            self.assertEqual(profile.get_mailbox_secret(), "dave-password")
            self.assertEqual(profile.connection.get_secret(), "service-password")
            self.acme.refresh_from_db()
            self.assertNotEqual(self.acme.share_secret, old_share_token)
            self.assertEqual(self.acme.share_password(), "share-password")

    def test_rotation_without_the_old_key_changes_nothing_and_names_the_setting(self) -> None:
        with override_settings(ENCRYPTION_KEYS=[OLD_KEY]):
            connection = self.make_connection(self.acme)
        before = _stored_token(connection.id)
        with (
            override_settings(ENCRYPTION_KEYS=[NEW_KEY]),
            self.assertRaisesMessage(CommandError, "ENCRYPTION_KEYS"),
        ):
            call_command("rotate_secrets")
        self.assertEqual(_stored_token(connection.id), before)


class MissingKeyTestCase(BaseTestCase):
    def test_a_missing_key_is_an_error_naming_the_setting(self) -> None:
        connection = self.make_connection(self.acme)
        with override_settings(ENCRYPTION_KEYS=[]):
            with self.assertRaisesMessage(SecretKeyError, "set ENCRYPTION_KEYS"):
                connection.get_secret()
            (error,) = check_encryption_keys()
            self.assertEqual(error.id, "profiles.E001")
            self.assertIn("ENCRYPTION_KEYS", error.msg)

    def test_a_wrong_key_is_an_error_naming_the_setting(self) -> None:
        connection = self.make_connection(self.acme)
        with (
            override_settings(ENCRYPTION_KEYS=[NEW_KEY]),
            self.assertRaisesMessage(SecretKeyError, "any key in ENCRYPTION_KEYS"),
        ):
            connection.get_secret()

    def test_a_malformed_key_is_an_error_naming_its_position(self) -> None:
        with override_settings(ENCRYPTION_KEYS=[NEW_KEY, "not-a-key"]):
            (error,) = check_encryption_keys()
        self.assertIn("ENCRYPTION_KEYS entry 2 is not a valid Fernet key", error.msg)

    def test_the_admin_says_what_is_wrong_instead_of_crashing(self) -> None:
        connection = self.make_connection(self.acme)
        self.client.force_login(self.alice)
        with override_settings(ENCRYPTION_KEYS=[]):
            response = self.client.post(
                f"/admin/profiles/mailboxconnection/{connection.id}/change/",
                {
                    "organization": self.acme.id, "name": connection.name, "kind": "ews",
                    "ews_url": connection.ews_url, "auth_type": "ntlm",
                    "access": "impersonation", "username": connection.username,
                    "secret": "another", "verify_tls": "on",
                },
            )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "set ENCRYPTION_KEYS")
