"""The fixed cast (tests.base) with a profile each, runs and duplicate candidates.

- dave and eve: plain users of Acme, one profile each;
- bob: Acme's organization administrator (sees dave's and eve's profiles);
- charlie: Globex's organization administrator, with a profile of his own;
- alice: superuser (sees everything).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from engine.models import DuplicateCandidate, Run, RunItem
from profiles.models import Membership, SyncProfile
from tests.base import BaseTestCase


class PortalTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.eve = self._member("eve", self.acme, Membership.Role.USER)
        self.daves = self.make_profile(self.acme, self.dave, "dave@acme.example")
        self.eves = self.make_profile(self.acme, self.eve, "eve@acme.example")
        self.charlies = self.make_profile(self.globex, self.charlie, "charlie@globex.example")

    def make_run(self, profile: SyncProfile, **fields: Any) -> Run:
        started = fields.pop("started", timezone.now() - dt.timedelta(minutes=5))
        fields.setdefault("status", Run.Status.SUCCESS)
        fields.setdefault("finished", started + dt.timedelta(seconds=3))
        fields.setdefault("agenda", "contacts")
        return Run.objects.create(profile=profile, started=started, **fields)

    def make_item(self, run: Run, action: str, title: str, **fields: Any) -> RunItem:
        return RunItem.objects.create(run=run, action=action, title=title, **fields)

    def make_candidate(self, profile: SyncProfile, **fields: Any) -> DuplicateCandidate:
        fields.setdefault("crm_key", "1")
        fields.setdefault("remote_id", f"AAMk-{DuplicateCandidate.objects.count()}")
        fields.setdefault("address", "info@stavby.cz")
        fields.setdefault("crm_title", "Petr Svoboda")
        fields.setdefault("remote_title", "Petr Svoboda (Exchange)")
        return DuplicateCandidate.objects.create(profile=profile, **fields)

    def sign_in(self, user: User) -> None:
        self.client.force_login(user)
