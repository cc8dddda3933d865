"""The CRM connection's admin and Raynet webhooks: "Test connection" registers the hook (or
says in words why webhooks are off), and the "Register webhook" action does it again."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from profiles.models import CrmConnection, Organization, RaynetWebhook
from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401
from tests.engine.raynet_helpers import connect_to_raynet

pytestmark = pytest.mark.django_db
BASE = "/admin/profiles/crmconnection/"


@pytest.fixture
def connection(raynetsim: RaynetHandle) -> CrmConnection:  # noqa: F811
    organization = Organization.objects.create(name="Acme")
    return connect_to_raynet(CrmConnection.objects.get(organization=organization), raynetsim)


def said(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_without_a_public_address_test_connection_says_why_webhooks_are_off(
        admin_client: Any, connection: CrmConnection) -> None:
    with override_settings(PUBLIC_BASE_URL=""):
        response = admin_client.post(f"{BASE}{connection.pk}/test-connection/", follow=True)
    messages = said(response)
    assert any("Raynet instance acme answers" in m for m in messages), messages
    assert any("Webhooks are off" in m and "PUBLIC_BASE_URL" in m
               and "at each profile's interval" in m for m in messages), messages
    assert not RaynetWebhook.objects.exists()


def test_test_connection_registers_the_webhook_and_the_action_replaces_it(
        admin_client: Any, connection: CrmConnection, raynetsim: RaynetHandle) -> None:  # noqa: F811
    with override_settings(PUBLIC_BASE_URL="https://sync.example.com/"):
        response = admin_client.post(f"{BASE}{connection.pk}/test-connection/", follow=True)
        url = f"https://sync.example.com/hooks/raynet/{connection.pk}/"
        assert any(url in m for m in said(response)), said(response)
        first = RaynetWebhook.objects.get(connection=connection)
        response = admin_client.post(BASE, {"action": "register_webhook",
                                            "_selected_action": [connection.pk]}, follow=True)
    assert any(url in m for m in said(response)), said(response)
    second = RaynetWebhook.objects.get(connection=connection)
    assert second.hook_id != first.hook_id
    hooks = raynetsim.server.store.instances[raynetsim.instance].webhooks
    assert [hook.url for hook in hooks.values()] == [url]


def test_a_failing_registration_is_said_and_the_interval_goes_on(
        admin_client: Any, connection: CrmConnection, raynetsim: RaynetHandle) -> None:  # noqa: F811
    raynetsim.control.fault("http_500", path="webhook", count=10)
    with override_settings(PUBLIC_BASE_URL="https://sync.example.com"):
        response = admin_client.post(BASE, {"action": "register_webhook",
                                            "_selected_action": [connection.pk]}, follow=True)
    assert any("The webhook could not be registered" in m for m in said(response)), \
        said(response)
    assert not RaynetWebhook.objects.exists()


def test_the_change_page_says_how_the_webhook_stands(
        admin_client: Any, connection: CrmConnection) -> None:
    page = f"{BASE}{connection.pk}/change/"
    with override_settings(PUBLIC_BASE_URL=""):
        assert "Webhooks are off: this server&#x27;s public address (PUBLIC_BASE_URL) is not " \
               "set" in admin_client.get(page).content.decode()
    with override_settings(PUBLIC_BASE_URL="https://sync.example.com"):
        assert "Not registered" in admin_client.get(page).content.decode()
        admin_client.post(f"{BASE}{connection.pk}/test-connection/")
        RaynetWebhook.objects.filter(connection=connection).update(refused=2)
        text = admin_client.get(page).content.decode()
    assert f"Raynet posts its changes to https://sync.example.com/hooks/raynet/{connection.pk}/" \
           in text
    assert "2 deliveries refused" in text
