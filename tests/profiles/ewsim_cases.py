"""A base class for admin tests that reach ewsim: the fixed cast, plus a simulated Exchange.

ewsim holds alice@example.com (the fixture's own user), bob's and charlie's mailboxes, and a
service account that may impersonate every mailbox; each organization has a connection to it.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpResponse

from ewsim.testing import SimHandle
from profiles.models import MailboxConnection
from tests.base import BaseTestCase

SERVICE = "svc@example.com"
SERVICE_PASSWORD = "svc-secret"


class EwsimAdminTestCase(BaseTestCase):
    sim: SimHandle

    @pytest.fixture(autouse=True)
    def _simulated_exchange(self, ewsim: SimHandle) -> None:
        self.sim = ewsim
        ewsim.control.add_user(SERVICE, SERVICE_PASSWORD, can_impersonate=["*"])
        ewsim.control.add_user("bob@acme.example", "bob-secret")
        ewsim.control.add_user("charlie@globex.example", "charlie-secret")

    def ews_connection(self, organization: Any, **fields: Any) -> MailboxConnection:
        """A connection to ewsim with the service account (Basic), unless told otherwise."""
        password = fields.pop("password", SERVICE_PASSWORD)
        fields.setdefault("ews_url", self.sim.url)
        fields.setdefault("auth_type", MailboxConnection.Auth.BASIC)
        fields.setdefault("username", SERVICE)
        connection = self.make_connection(organization, **fields)
        connection.set_secret(password)
        connection.save()
        return connection

    def requests_to_exchange(self) -> int:
        return sum(self.sim.control.counters().values())

    @staticmethod
    def messages_of(response: HttpResponse) -> list[tuple[str, str]]:
        """(level tag, text) of every message shown on the page (a followed redirect's)."""
        return [(m.level_tag, str(m)) for m in response.context["messages"]]
