"""The CRM registry as the listener and the reports use it, with the test settings' kinds:
"builtin", "limited" (built on the built-in store), "raynet" (its webhook journal) and
"memory" (no watch)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from engine.crmstore import registry
from engine.crmstore.builtin import BuiltinCrm
from engine.crmstore.builtin_watch import BuiltinWatch
from profiles.models import Organization
from tests.engine.crmstore.memory import MemoryCrm


def test_kinds_built_on_one_store_share_its_watch_and_a_kind_without_one_adds_none() -> None:
    assert set(registry.kinds()) == {"builtin", "raynet", "limited", "memory"}
    watches = registry.change_watches(10)
    assert sorted(type(watch).__name__ for watch in watches) == ["BuiltinWatch", "RaynetWatch"]
    assert any(isinstance(watch, BuiltinWatch) for watch in watches)


def test_a_server_with_only_unwatched_kinds_has_no_watch() -> None:
    with override_settings(SYNC_CRM_KINDS={"memory": "tests.engine.crmstore.memory.MemoryCrm"}):
        assert registry.change_watches(10) == []


def test_a_path_naming_no_crm_backend_is_refused() -> None:
    odd = {"builtin": "engine.crmstore.builtin.BuiltinCrm",
           "odd": "engine.crmstore.registry.kinds"}
    with override_settings(SYNC_CRM_KINDS=odd), \
            pytest.raises(ImproperlyConfigured, match="not a CrmBackend"):
        registry.backend_class("odd")


@pytest.mark.django_db
def test_reports_read_the_crm_the_organization_names() -> None:
    organization = Organization.objects.create(name="Stavby")
    assert isinstance(registry.organization_crm(organization.pk), BuiltinCrm)
    assert registry.reached_by(organization.pk) == "builtin"
    organization.crm_connection.kind = "memory"
    organization.crm_connection.save()
    assert isinstance(registry.organization_crm(organization.pk), MemoryCrm)
    assert registry.reached_by(organization.pk).startswith("memory:")
