"""The fixed cast every test starts from.

Two organizations, Acme and Globex:
- alice: superuser (sees everything);
- bob: Acme's organization administrator;
- charlie: Globex's organization administrator;
- dave: a plain user in Acme.

Each organization has its own attachment root, a folder of the test share (ATTACHMENT_ROOTS):
`<share>/acme` and `<share>/globex`.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.test import TestCase

from crm.models import CrmUser
from profiles.models import MailboxConnection, Membership, Organization, SyncProfile


class BaseTestCase(TestCase):
    password = "correct horse battery staple"

    def setUp(self) -> None:
        super().setUp()
        share = settings.ATTACHMENT_ROOTS[0]
        self.acme = Organization.objects.create(
            name="Acme", attachment_roots=os.path.join(share, "acme"))
        self.globex = Organization.objects.create(
            name="Globex", attachment_roots=os.path.join(share, "globex"))
        self.alice = User.objects.create_superuser("alice", "alice@example.org", self.password)
        self.bob = self._member("bob", self.acme, Membership.Role.ADMIN)
        self.charlie = self._member("charlie", self.globex, Membership.Role.ADMIN)
        self.dave = self._member("dave", self.acme, Membership.Role.USER)

    def _member(self, username: str, organization: Organization, role: str) -> User:
        user = User.objects.create_user(username, f"{username}@example.org", self.password)
        Membership.objects.create(user=user, organization=organization, role=role)
        user.refresh_from_db()
        return user

    def make_connection(self, organization: Organization, **fields: Any) -> MailboxConnection:
        connection = MailboxConnection(
            organization=organization,
            name=fields.pop("name", f"{organization.name} Exchange"),
            ews_url=fields.pop("ews_url", "https://mail.example.org/EWS/Exchange.asmx"),
            username=fields.pop("username", "EXAMPLE\\svc-sync"),
            **fields,
        )
        connection.set_secret("service-password")
        connection.save()
        return connection

    def make_profile(
        self, organization: Organization, user: User, mailbox: str, **fields: Any
    ) -> SyncProfile:
        connection = fields.pop("connection", None) or self.make_connection(
            organization, name=f"{mailbox} connection"
        )
        crm_user = CrmUser.objects.create(
            organization=organization, name=mailbox, login=mailbox
        )
        return SyncProfile.objects.create(
            organization=organization,
            user=user,
            mailbox=mailbox,
            crm_user=crm_user,
            connection=connection,
            **fields,
        )
