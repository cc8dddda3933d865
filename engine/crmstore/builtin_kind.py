"""The built-in store as a kind of CRM: its label, what it can do, how a profile's view of it
is built, and what "Test connection" tells about it.

Kept apart from builtin.py, which reads and writes the records: this is the part the
configuration (SYNC_CRM_KINDS, the CRM connection's admin) deals with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from crm.models import CrmUser, Event, Person
from engine.crmstore.base import Capability, CrmDiagnosis
from engine.crmstore.builtin_events import EventOptions

if TYPE_CHECKING:
    from engine.crmstore.builtin import BuiltinCrm
    from profiles.models import CrmConnection, SyncProfile


class BuiltinKind:
    """Mixed into BuiltinCrm, before CrmBackend, whose declarations it fills in.

    The store lives in this server's own database: there is nothing to sign in to, so its
    connection has no settings and no secrets."""

    label = _("Built-in CRM store")
    capabilities = frozenset(Capability)

    @classmethod
    def for_profile(cls, profile: SyncProfile, connection: CrmConnection) -> BuiltinCrm:
        """Its contact scope (its CRM user's persons, the organization's or a classification
        branch's), its own events."""
        from engine.crmstore.builtin import PersonOptions

        calendar = profile.calendarsettings
        contacts = profile.contactsettings
        return cls(
            profile.organization_id,
            classification_node_id=contacts.branch_id,
            person_options=PersonOptions(
                owner_id=profile.crm_user_id,
                own_only=contacts.scope == contacts.Scope.OWNED),
            event_options=EventOptions(owner_id=profile.crm_user_id,
                                       imported_status_id=calendar.imported_status_id,
                                       link_attendees=calendar.link_attendees,
                                       link_attendee_companies=calendar.link_attendee_companies))

    @classmethod
    def for_organization(cls, connection: CrmConnection) -> BuiltinCrm:
        return cls(connection.organization_id)

    @classmethod
    def reached_by(cls, connection: CrmConnection) -> str:
        return "builtin"   # the organization's own store: there is no other to reach

    @classmethod
    def diagnose(cls, connection: CrmConnection) -> CrmDiagnosis:
        organization_id = connection.organization_id
        persons = Person.objects.filter(organization_id=organization_id).count()
        events = Event.objects.filter(organization_id=organization_id).count()
        users = CrmUser.objects.filter(organization_id=organization_id, active=True).count()
        found = gettext("The built-in CRM store answers: %(persons)s, %(events)s, %(users)s.") % {
            "persons": ngettext("%(count)d person", "%(count)d persons", persons)
            % {"count": persons},
            "events": ngettext("%(count)d event", "%(count)d events", events)
            % {"count": events},
            "users": ngettext("%(count)d active CRM user", "%(count)d active CRM users", users)
            % {"count": users}}
        if not users:
            # Every sync profile names the CRM user whose records its mailbox holds.
            return CrmDiagnosis(False, found + " " + gettext(
                "Nothing can be synced yet: add a CRM user for each person whose mailbox is "
                "synced (CRM › CRM users)."))
        return CrmDiagnosis(True, found)
