"""Raynet as a kind of CRM: its label, its connection's settings, what it can do, how a
profile's view of it is built, and what "Test connection" tells about it.

Kept apart from raynet.py, which reads and writes the records: this is the part the
configuration (SYNC_CRM_KINDS, the CRM connection's admin) deals with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from engine.crmstore.base import Capability, ChangeWatch, CrmDiagnosis, SettingField
from engine.crmstore.raynet_budget import InstanceBudget
from engine.crmstore.raynet_client import DEFAULT_BASE_URL, RaynetClient, RaynetError
from engine.crmstore.raynet_mapping import CONTACTS_ONLY, UNMAPPED_CONTACT, UNMAPPED_EVENT
from engine.crmstore.unheld import held_capabilities
from engine.records import Kind

ACTIVITIES = ("meeting", "event")

if TYPE_CHECKING:
    from engine.crmstore.raynet import RaynetCrm
    from profiles.models import CrmConnection, SyncProfile


def client_for(connection: CrmConnection) -> RaynetClient:
    return RaynetClient(connection.setting("base_url") or DEFAULT_BASE_URL,
                        connection.setting("instance"), connection.setting("user"),
                        connection.get_secret("api_key"))


def instance_key(client: RaynetClient) -> str:
    """The instance a client reaches, as the journal of known ids and the budget name it:
    one whatever connection or profile reaches it."""
    return instance_key_of(client.base_url, client.instance)


def instance_key_of(base_url: str, instance: str) -> str:
    return f"{urlsplit(base_url or DEFAULT_BASE_URL).netloc.lower()}/{instance.strip().lower()}"
def activity_of(connection: CrmConnection) -> str:
    """The Raynet activity the calendar syncs with: "meeting" unless the connection says
    "event" (what Raynet's Outlook add-in makes of an event created in Outlook)."""
    activity = (connection.setting("activity") or "meeting").strip().lower()
    if activity not in ACTIVITIES:
        # Refused as a profile on a classification branch is: a configuration this kind
        # cannot serve, named in words where the sync is started (never guessed at).
        raise NotImplementedError(gettext(
            "The calendar activity %(activity)s is not one Raynet syncs: write meeting or "
            "event.") % {"activity": activity})
    return activity


def owner_of(client: RaynetClient, login: str) -> int:
    """The Raynet owner a CRM user names: its login is the e-mail the Raynet user signs in
    with (or, as Raynet's owners are persons, the id of the person the user is). Looked up
    once per backend, so once a run; not kept longer, as an instance set up again gives its
    users new persons."""
    if login.isdigit():
        return int(login)
    users = client.get("userAccount/", username=login.strip().lower()).get("data") or []
    if not users:
        raise RaynetError(gettext(
            "Raynet has no user %(login)s: a CRM user's login is the e-mail its Raynet user "
            "signs in with.") % {"login": login}, 404)   # each record it would own: theirs
    return int(users[0]["person"]["id"])


class RaynetKind:
    """Mixed into RaynetCrm, before CrmBackend, whose declarations it fills in.

    Capabilities: none of the optional ones. Raynet has classifications and categories but
    no tree of nested branches; a person's photo is not written through the API; a person
    has one private address (the business address is its company's, shared by every person
    of it, so writing one person's card there would change the others'); activities have
    statuses of their own (scheduled, completed, cancelled), not a list to choose from."""

    label = _("Raynet CRM")
    # What Raynet has no attribute for (raynet_mapping.py), and the photo, which its API
    # does not write; the capabilities that stand for fields follow from it.
    unheld_fields: Mapping[Kind, frozenset[str]] = {
        Kind.CONTACTS: UNMAPPED_CONTACT | {"photo_token"}, Kind.CALENDAR: UNMAPPED_EVENT}
    capabilities: frozenset[Capability] = held_capabilities(unheld_fields)
    settings_fields = (
        SettingField("base_url", _("API address"), required=False, help_text=_(
            "Raynet's API for your region; empty: https://app.raynet.cz/api/v2/ (also "
            "app.raynet.sk, app.raynetcrm.com, eu.raynetcrm.com).")),
        SettingField("instance", _("Instance name"), help_text=_(
            "The name of your Raynet instance, as in its address.")),
        SettingField("user", _("API user (e-mail)")),
        SettingField("api_key", _("API key"), secret=True, help_text=_(
            "Raynet › Settings › API keys of the API user.")),
        SettingField("activity", _("Calendar activity"), required=False, help_text=_(
            "meeting (empty) or event: the Raynet activity Exchange's events sync with. With "
            "event, an event made in Outlook becomes a private event in Raynet, as Raynet's "
            "Outlook add-in makes it.")),
    )

    @classmethod
    def change_watch(cls, events_named: int) -> ChangeWatch | None:
        # Raynet's webhook deliveries, journaled by this server (engine/raynet_hooks.py).
        from engine.crmstore.raynet_watch import RaynetWatch

        return RaynetWatch(events_named)

    @classmethod
    def for_profile(cls, profile: SyncProfile, connection: CrmConnection) -> RaynetCrm:
        contacts = profile.contactsettings
        if contacts.branch_id is not None:
            # Refused, not widened to the whole organization: syncing persons the profile
            # never chose would be a change of scope no one asked for.
            raise NotImplementedError(
                "Raynet has no classification tree: choose which persons the profile syncs "
                "by owner or the whole organization.")
        return cls(client_for(connection), profile.crm_user.login,  # type: ignore[call-arg]
                   own_only=contacts.scope == contacts.Scope.OWNED,
                   activity=activity_of(connection))

    @classmethod
    def for_organization(cls, connection: CrmConnection) -> RaynetCrm:
        return cls(client_for(connection), None,  # type: ignore[call-arg]
                   activity=activity_of(connection))

    @classmethod
    def diagnose(cls, connection: CrmConnection) -> CrmDiagnosis:
        client = client_for(connection)
        try:
            activity_of(connection)
        except NotImplementedError as exc:
            return CrmDiagnosis(False, str(exc))
        try:
            persons = client.get("person/", limit=1, view="rowInfo", **CONTACTS_ONLY)
            meetings = client.get("meeting/", limit=1, view="rowInfo")
        except RaynetError as exc:
            return CrmDiagnosis(False, str(exc))
        message = gettext(
            "Raynet instance %(instance)s answers: %(persons)s persons, %(meetings)s "
            "meetings.") % {"instance": client.instance,
                            "persons": persons.get("totalCount", 0),
                            "meetings": meetings.get("totalCount", 0)}
        budget = client.budget
        # Kept for the instance's runs too: "Test connection" is often the first answer.
        InstanceBudget(instance_key(client)).record(budget.limit, budget.remaining,
                                                    budget.reset)
        if budget.remaining is not None:
            message += " " + gettext("Requests left today: %(remaining)s of %(limit)s.") % {
                "remaining": budget.remaining, "limit": budget.limit}
        return CrmDiagnosis(True, message)
