from profiles.models.agendas import (
    CalendarSettings,
    CategoryPairing,
    ContactSettings,
    MailFolder,
    MailSettings,
)
from profiles.models.audit import AuditEntry
from profiles.models.connections import MailboxConnection
from profiles.models.crm_connections import CrmConnection
from profiles.models.graph_subscriptions import GraphNotification, GraphSubscription
from profiles.models.organizations import Membership, Organization
from profiles.models.raynet_webhooks import RaynetWebhook, RaynetWebhookEvent
from profiles.models.sync_profiles import SyncProfile

__all__ = [
    "AuditEntry",
    "CalendarSettings",
    "CategoryPairing",
    "ContactSettings",
    "CrmConnection",
    "GraphNotification",
    "GraphSubscription",
    "MailFolder",
    "MailSettings",
    "MailboxConnection",
    "Membership",
    "Organization",
    "RaynetWebhook",
    "RaynetWebhookEvent",
    "SyncProfile",
]
