"""The CRM contract run against RaynetCrm over raynetsim (every request and answer validated
against Raynet's specification by the fixture), and what only this kind does: "Test
connection" naming what is wrong in plain words."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm.models import CrmUser
from engine.crmstore.base import Capability, CrmBackend
from engine.crmstore.raynet import RaynetCrm
from engine.crmstore.raynet_client import RaynetClient, RaynetError
from engine.records import Kind
from profiles.models import CrmConnection, Organization, SyncProfile
from raynetsim.testing import RaynetHandle, raynetsim, raynetsim_server  # noqa: F401
from tests.engine.crmstore.contract import USERS, CrmContract, person
from tests.engine.crmstore.harness import sync_profile

OTHER_INSTANCE = "globex"

def api_user(name: str) -> dict[str, str]:
    return {"email": f"{name}@example.com", "api_key": f"{name}-api-key",
            "full_name": f"{name.title()} Example"}


class TestRaynetCrm(CrmContract):
    backend_class = RaynetCrm

    @pytest.fixture(autouse=True)
    def _organizations(self, db: None, raynetsim: RaynetHandle) -> Iterator[None]:  # noqa: F811
        self.sim = raynetsim
        made = raynetsim.control.add_instance(raynetsim.instance,
                                              [api_user(name) for name in USERS])
        self.owners = {name: str(user["person_id"]) for name, user in zip(
            USERS, made["users"], strict=True)}
        elsewhere = raynetsim.control.add_instance(OTHER_INSTANCE, [api_user("alice")])
        self.elsewhere_owner = elsewhere["users"][0]["person_id"]
        self.acme_row = Organization.objects.create(name="Acme")
        # A CRM user's login is the e-mail its Raynet user signs in with.
        self.users = {name: CrmUser.objects.create(organization=self.acme_row,
                                                   name=name.title(),
                                                   login=f"{name}@example.com").pk
                      for name in USERS}
        connection = CrmConnection.objects.get(organization=self.acme_row)
        connection.kind = "raynet"
        connection.settings = {"base_url": raynetsim.url, "instance": raynetsim.instance,
                               "user": "alice@example.com"}
        connection.update_secrets({"api_key": "alice-api-key"})
        connection.save()
        yield

    def _client(self, instance: str | None = None) -> RaynetClient:
        return RaynetClient(self.sim.url, instance or self.sim.instance,
                            "alice@example.com", "alice-api-key")

    def open_backend(self, user: str = "alice", *, own_only: bool = False,
                     branch: str | None = None) -> CrmBackend:
        if branch is not None:
            raise NotImplementedError("Raynet has no classification tree")
        return RaynetCrm(self._client(), int(self.owners[user]), own_only=own_only)

    def open_elsewhere(self) -> CrmBackend:
        return RaynetCrm(self._client(OTHER_INSTANCE), self.elsewhere_owner)

    def make_branch(self, name: str, parent: str | None = None) -> str:
        raise NotImplementedError("Raynet has no classification tree")

    def user_key(self, user: str) -> str:
        return self.owners[user]

    def participants(self, key: str) -> set[str]:
        data = self._client().get(f"meeting/{key}/")["data"]
        return {str(p["person"]) for p in data.get("participants") or ()
                if p.get("person") and not p.get("owner")}

    def email_links(self, key: str) -> tuple[set[str], set[str]]:
        """Its participants: the persons (less the CRM users having the e-mail) and the
        companies."""
        participants = self._client().get(f"email/{key}/")["data"]["participants"]
        users = {int(owner) for owner in self.owners.values()}
        return ({str(p["person"]) for p in participants
                 if p.get("person") and p["person"] not in users},
                {str(p["company"]) for p in participants
                 if p.get("company") and not p.get("person")})

    def connection(self) -> CrmConnection:
        return CrmConnection.objects.get(organization=self.acme_row)

    def profile(self, user: str, scope: str, branch: str | None = None) -> SyncProfile:
        return sync_profile(self.acme_row, self.users[user], scope, branch)

    # --- what the capabilities exclude --------------------------------------------------------
    def test_a_photo_round_trips_and_its_token_follows_it(self) -> None:
        assert Capability.PHOTOS not in self.backend_class.capabilities
        pytest.skip("Raynet's API writes no photos (no PHOTOS capability)")

    def test_a_branch_holds_its_own_persons_and_those_of_its_sub_nodes(self) -> None:
        assert Capability.CLASSIFICATION not in self.backend_class.capabilities
        pytest.skip("Raynet has no classification tree (no CLASSIFICATION capability)")

    # --- what only this kind does -----------------------------------------------------------
    def test_test_connection_counts_the_records_and_the_requests_left(self) -> None:
        self.sim.control.budget(self.sim.instance, daily_limit=500, used=100)
        diagnosis = RaynetCrm.diagnose(self.connection())
        assert diagnosis.ok, diagnosis
        assert "Raynet instance acme answers: 0 persons, 0 meetings." in diagnosis.message
        assert "Requests left today: 398 of 500." in diagnosis.message

    def test_test_connection_names_a_wrong_api_key(self) -> None:
        connection = self.connection()
        connection.update_secrets({"api_key": "not-the-key"})
        diagnosis = RaynetCrm.diagnose(connection)
        assert not diagnosis.ok
        assert "check the API user's e-mail and the API key" in diagnosis.message

    def test_test_connection_names_an_unknown_instance(self) -> None:
        connection = self.connection()
        connection.settings["instance"] = "acne"
        diagnosis = RaynetCrm.diagnose(connection)
        assert not diagnosis.ok
        assert "Raynet knows no instance named acne" in diagnosis.message

    def test_test_connection_names_a_blocked_address(self) -> None:
        intruder = RaynetClient(self.sim.url, self.sim.instance, "alice@example.com", "guess")
        for _ in range(21):
            with pytest.raises(RaynetError):
                intruder.get("person/")
        diagnosis = RaynetCrm.diagnose(self.connection())
        assert not diagnosis.ok
        assert "blocks this server's address after too many failed sign-ins" \
            in diagnosis.message

    def test_test_connection_names_an_exhausted_daily_budget(self) -> None:
        self.sim.control.budget(self.sim.instance, daily_limit=50, used=50)
        diagnosis = RaynetCrm.diagnose(self.connection())
        assert not diagnosis.ok
        assert "has used up its daily request budget (50 requests)" in diagnosis.message

    def test_a_create_is_sent_again_only_after_a_503(self) -> None:
        self.sim.control.fault("http_503", path="PUT /api/v2/person/", count=1)
        written = self.open_backend().create(Kind.CONTACTS, person(1), "AAMk-1")
        assert written.ok, written
        # A 500 may come after the record was made: sent again, it could make a second.
        self.sim.control.fault("http_500", path="PUT /api/v2/person/", count=1)
        failed = self.open_backend().create(Kind.CONTACTS, person(2), "AAMk-2")
        assert not failed.ok and "Raynet answered 500" in failed.error, failed

    def test_a_read_is_sent_again_after_a_server_error_or_a_reset(self) -> None:
        written = self.created(self.open_backend(), Kind.CONTACTS, person(1))
        self.sim.control.fault("http_500", path="GET /api/v2/person/[0-9]+/", count=1)
        self.sim.control.fault("connection_reset", path="GET /api/v2/person/[0-9]+/",
                               count=1)
        assert written.key in self.open_backend().fetch(Kind.CONTACTS, [written.key])
        self.sim.control.fault("http_500", path="GET /api/v2/person/[0-9]+/", count=3)
        # Still failing after two more tries: that record's error, not the run's.
        backend = self.open_backend()
        assert backend.fetch(Kind.CONTACTS, [written.key]) == {}
        (failure,) = backend.fetch_failures()
        assert failure.key == written.key and "Raynet answered 500" in failure.message
