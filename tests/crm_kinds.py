"""A second kind of CRM for the tests of CRM connections: the built-in store seen as a CRM
that signs in with an instance, a user and an API key, and lacks some capabilities, so that
switching kinds, secret fields and hidden options can be tested without a second real CRM."""

from __future__ import annotations

from engine.crmstore.base import Capability, SettingField
from engine.crmstore.builtin import BuiltinCrm
from engine.records import Kind


class LimitedCrm(BuiltinCrm):
    label = "Limited CRM (tests)"
    capabilities = frozenset({Capability.PHOTOS})
    settings_fields = (
        SettingField("instance", "instance name"),
        SettingField("user", "user name"),
        SettingField("api_key", "API key", secret=True),
        SettingField("note", "note", required=False),
    )


class MisdeclaredCrm(BuiltinCrm):
    """A kind whose declarations contradict each other: photos among its capabilities, yet
    no place for one; all three addresses, yet no home address."""

    label = "Misdeclared CRM (tests)"
    unheld_fields = {Kind.CONTACTS: frozenset({"photo_token", "home_address"})}
