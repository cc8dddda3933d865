"""The CRM connection's page says which Exchange fields its CRM has no place for (they stay
only in Exchange), built from the kind's declaration (`unheld_fields`) in the reader's
language; a CRM that holds everything says nothing of the kind."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import translation

from console.admin_crm import unheld_text
from engine.crmstore.builtin import BuiltinCrm
from engine.crmstore.raynet import RaynetCrm
from profiles.models import CrmConnection, Organization

pytestmark = pytest.mark.django_db
BASE = "/admin/profiles/crmconnection/"
LABEL = "Kept only in Exchange"


def connection_of(name: str, kind: str) -> CrmConnection:
    connection = CrmConnection.objects.get(organization=Organization.objects.create(name=name))
    if kind == "raynet":
        connection.kind = kind
        connection.settings = {"instance": "acme", "user": "alice@acme.example"}
        connection.save()
    return connection


def test_a_raynet_connection_lists_the_fields_that_stay_in_exchange(admin_client: Any) -> None:
    connection = connection_of("Acme", "raynet")
    page = admin_client.get(f"{BASE}{connection.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert LABEL in text
    for words in ("Raynet CRM has no field for these; they stay only in Exchange",
                  "Contacts: middle name, department, e-mail 3, business address, other "
                  "address, business phone 2, home phone, other phone, photo.",
                  "Calendar: time zone of a single event, all day."):
        assert words in text, words
    # Read-only: nothing of it is a form field.
    assert 'name="only_in_exchange"' not in text


def test_the_built_in_store_holds_everything_and_says_nothing(admin_client: Any) -> None:
    connection = connection_of("Initech", "builtin")
    page = admin_client.get(f"{BASE}{connection.pk}/change/")
    assert page.status_code == 200
    assert LABEL not in page.content.decode()
    assert unheld_text(BuiltinCrm) == ""


def test_the_fields_are_named_in_the_readers_language() -> None:
    with translation.override("cs"):
        text = unheld_text(RaynetCrm)
    assert "druhé jméno" in text and "oddělení" in text, text
    assert "middle name" not in text
