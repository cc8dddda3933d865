"""An organization's CRM connection: the kinds of CRM by dotted path, the connection's
settings and secrets, the built-in store as everyone's default, and the backend the sync
builds from it."""

from __future__ import annotations

import io

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.db import connection as db_connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase, override_settings

from crm.models import Event, Person
from engine.crmstore import registry
from engine.crmstore.base import Capability
from engine.crmstore.builtin import BuiltinCrm
from engine.sync import crm_for
from profiles.models import CrmConnection, Organization
from tests.base import BaseTestCase
from tests.crm_kinds import LimitedCrm

BUILTIN_ONLY = {"builtin": "engine.crmstore.builtin.BuiltinCrm"}


class CrmKindsTestCase(BaseTestCase):
    def test_the_setting_names_each_kind_by_its_class(self) -> None:
        assert registry.backend_class("builtin") is BuiltinCrm
        assert registry.backend_class("limited") is LimitedCrm
        assert registry.kind_choices() == [("builtin", "Built-in CRM store"),
                                           ("raynet", "Raynet CRM"),
                                           ("limited", "Limited CRM (tests)"),
                                           ("memory", "In-memory CRM (tests)")]

    def test_a_path_that_names_no_crm_backend_is_a_configuration_error(self) -> None:
        for path in ("engine.crmstore.nowhere.Crm", "engine.crmstore.base.Capability"):
            with (self.subTest(path=path), override_settings(SYNC_CRM_KINDS={"bad": path}),
                  self.assertRaisesRegex(ImproperlyConfigured, "SYNC_CRM_KINDS")):
                registry.backend_class("bad")
        with self.assertRaisesRegex(ImproperlyConfigured, "not in SYNC_CRM_KINDS"):
            registry.backend_class("salesforce")

    def test_the_system_check_names_a_kind_that_cannot_be_loaded(self) -> None:
        assert registry.check_crm_kinds() == []
        with override_settings(SYNC_CRM_KINDS={"raynet": "engine.crmstore.nowhere.Crm"}):
            errors = registry.check_crm_kinds()
        assert [error.id for error in errors] == ["engine.E001", "engine.E002"]
        assert "engine.crmstore.nowhere.Crm" in errors[1].msg

    def test_the_system_check_names_capabilities_and_unheld_fields_that_disagree(
            self) -> None:
        kinds = {**BUILTIN_ONLY, "odd": "tests.crm_kinds.MisdeclaredCrm"}
        with override_settings(SYNC_CRM_KINDS=kinds):
            errors = registry.check_crm_kinds()
        assert [error.id for error in errors] == ["engine.E003", "engine.E003"]
        assert "'odd'" in errors[0].msg and "photos but cannot hold photo_token" \
            in errors[0].msg, errors[0].msg
        assert "three_addresses but cannot hold home_address" in errors[1].msg, errors[1].msg

    def test_the_built_in_store_can_do_everything_the_test_kind_only_photos(self) -> None:
        assert BuiltinCrm.capabilities == frozenset(Capability)
        assert BuiltinCrm.settings_fields == ()
        assert LimitedCrm.capabilities == {Capability.PHOTOS}


class CrmConnectionTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.profile = self.make_profile(self.acme, self.dave, "dave@acme.example")

    def switch(self, organization: Organization, kind: str, **settings: str) -> CrmConnection:
        connection = organization.crm_connection
        connection.kind = kind
        connection.settings = settings
        connection.save()
        return connection

    def test_a_new_organization_uses_the_built_in_store(self) -> None:
        initech = Organization.objects.create(name="Initech")
        assert initech.crm_connection.kind == "builtin"
        assert (initech.crm_connection.settings, initech.crm_connection.secret_token) == ({}, "")

    def test_the_sync_builds_the_backend_of_the_organizations_kind(self) -> None:
        crm = crm_for(self.profile, "contacts")
        assert type(crm) is BuiltinCrm
        assert crm.person_options.owner_id == self.profile.crm_user_id
        self.switch(self.acme, "limited", instance="acme", user="sync")
        assert type(crm_for(self.profile, "contacts")) is LimitedCrm
        assert type(registry.crm_for(self.profile)) is LimitedCrm

    def test_an_organization_without_a_connection_uses_the_built_in_store(self) -> None:
        CrmConnection.objects.filter(organization=self.acme).delete()
        assert registry.connection_of(self.acme.pk).kind == "builtin"
        assert registry.connection_of(self.acme.pk).pk is None
        assert type(crm_for(self.profile, "calendar")) is BuiltinCrm

    @override_settings(SYNC_CRM_KINDS=BUILTIN_ONLY)
    def test_a_kind_the_server_does_not_know_is_refused(self) -> None:
        connection = self.acme.crm_connection
        connection.kind = "limited"
        with self.assertRaises(ValidationError) as raised:
            connection.full_clean()
        assert "kind" in raised.exception.message_dict

    def test_a_kinds_required_settings_and_secrets_are_asked_for(self) -> None:
        connection = self.acme.crm_connection
        connection.kind = "limited"
        connection.settings = {"instance": "acme"}
        with self.assertRaises(ValidationError) as raised:
            connection.full_clean()
        assert set(raised.exception.message_dict) == {"limited__user", "limited__api_key"}
        connection.settings = {"instance": "acme", "user": "sync"}
        connection.update_secrets({"api_key": "k-123"})
        connection.full_clean()

    def test_secrets_are_stored_encrypted_and_follow_their_endpoint(self) -> None:
        connection = self.switch(self.acme, "limited", instance="acme", user="sync")
        connection.update_secrets({"api_key": "k-123"})
        connection.save()
        stored = CrmConnection.objects.get(pk=connection.pk)
        assert "k-123" not in stored.secret_token
        assert stored.get_secret("api_key") == "k-123"
        assert stored.stored_secret_names() == {"api_key"}
        # Pointed at another instance without the key entered again: the key is not sent there.
        stored.settings = {"instance": "elsewhere", "user": "sync"}
        with self.assertRaises(ValidationError) as raised:
            stored.full_clean()
        assert "enter API key again" in raised.exception.message_dict["limited__api_key"][0]
        stored.save()
        assert CrmConnection.objects.get(pk=connection.pk).get_secrets() == {}

    def test_key_rotation_reencrypts_the_secrets(self) -> None:
        old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        with override_settings(ENCRYPTION_KEYS=[old_key]):
            connection = self.switch(self.acme, "limited", instance="acme", user="sync")
            connection.update_secrets({"api_key": "k-123"})
            connection.save()
        # The suite's key too: the profile's mailbox password was stored with it.
        with override_settings(ENCRYPTION_KEYS=[new_key, old_key, *settings.ENCRYPTION_KEYS]):
            call_command("rotate_secrets", stdout=io.StringIO())
        with override_settings(ENCRYPTION_KEYS=[new_key]):
            assert CrmConnection.objects.get(pk=connection.pk).get_secret("api_key") == "k-123"

    def test_test_connection_counts_the_organizations_records_and_says_what_is_missing(
            self) -> None:
        Person.objects.create(organization=self.acme, last_name="Nová")
        Event.objects.create(organization=self.acme, subject="Porada",
                             owner=self.profile.crm_user, start="2026-12-01T10:00:00Z",
                             end="2026-12-01T11:00:00Z")
        report = BuiltinCrm.diagnose(self.acme.crm_connection)
        assert report.ok
        assert "1 person, 1 event, 1 active CRM user" in report.message
        report = BuiltinCrm.diagnose(self.globex.crm_connection)
        assert not report.ok
        assert "0 persons" in report.message
        assert "add a CRM user" in report.message


class CrmConnectionUpgradeTestCase(TransactionTestCase):
    BEFORE = [("profiles", "0007_labels_in_czech")]

    def test_every_existing_organization_gets_a_connection_to_the_built_in_store(self) -> None:
        executor = MigrationExecutor(db_connection)
        executor.migrate(self.BEFORE)
        old = executor.loader.project_state(self.BEFORE).apps.get_model("profiles",
                                                                        "Organization")
        ids = {old.objects.create(name=name).pk for name in ("Acme", "Globex")}
        executor = MigrationExecutor(db_connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        rows = CrmConnection.objects.filter(organization_id__in=ids)
        assert sorted(rows.values_list("kind", flat=True)) == ["builtin", "builtin"]
        assert {tuple(r.settings) for r in rows} == {()}
