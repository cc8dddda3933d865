"""What the contract's test modules set up alike on the test database: an organization's CRM
users, and sync profiles to build a backend from (`CrmBackend.for_profile`)."""

from __future__ import annotations

import itertools

from django.contrib.auth.models import User

from crm.models import CrmUser
from profiles.models import MailboxConnection, Organization, SyncProfile
from tests.engine.crmstore.contract import USERS

_LOGINS = itertools.count(1)


def crm_users(organization: Organization) -> dict[str, int]:
    """The contract's CRM users of `organization`, by name: their ids."""
    return {name: CrmUser.objects.create(organization=organization, name=name.title(),
                                         login=name).pk
            for name in USERS}


def sync_profile(organization: Organization, crm_user_id: int, scope: str,
                 branch: str | None = None) -> SyncProfile:
    """A profile of the CRM user `crm_user_id` whose contacts come from `scope` (a
    ContactSettings.Scope value; `branch`, a classification node's id, with "branch")."""
    login = f"profile-{next(_LOGINS)}"
    connection = MailboxConnection(organization=organization, name=login,
                                   ews_url="https://mail.example.org/EWS/Exchange.asmx",
                                   username="svc-sync")
    connection.set_secret("service-password")
    connection.save()
    profile = SyncProfile.objects.create(
        organization=organization, user=User.objects.create_user(login),
        mailbox=f"{login}@example.org", crm_user_id=crm_user_id, connection=connection)
    contacts = profile.contactsettings
    contacts.scope = scope
    contacts.classification_node_id = int(branch) if branch is not None else None
    contacts.save()
    return profile
