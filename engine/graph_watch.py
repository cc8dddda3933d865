"""Microsoft Graph change notifications: the subscriptions, and the journal the listener reads.

Graph has no stream to hold open like EWS: it posts to this server. So for each active
Graph profile the listener (engine/listen.py) keeps one subscription per synced folder
(contacts folder, calendar, each folder of the mail import), made with POST /subscriptions
through the Graph backend's client and tokens, grouped per connection (one client, one token,
for every profile of a connection):
- a subscription asks for LIFETIME (Outlook resources allow at most about 7 days) and is
  renewed (PATCH) once less than RENEW_BEFORE is left, or at once when Graph's lifecycle
  event `reauthorizationRequired` says so;
- one Graph removed (`subscriptionRemoved`, or a 404 on renewal) is made again, and so is
  one whose folder, mailbox or address changed; those of folders no longer synced, of
  profiles deactivated or moved off Graph are deleted;
- a subscription made anew (not renewed) queues one sync of its agenda: changes made before
  it existed were never notified.
Graph checks the address while a subscription is made (the validation handshake,
engine/graph_hooks.py), so the web server must be reachable at PUBLIC_BASE_URL. Without
PUBLIC_BASE_URL nothing is subscribed (and what was is deleted): Graph profiles are synced at
their interval, and the admin says why.

The journal (`GraphNotification`, written by the hooks) is read every second; each row
queues its profile's agenda, debounced by the listener. A `missed` lifecycle event queues the
same sync: the Graph backend reads from its stored delta link, which returns every change
since the previous read whatever notifications were lost, so that sync is the full catch-up.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets as random_secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import close_old_connections, connections
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from engine.mailbox import access_for
from engine.mailbox.base import MailboxError
from engine.mailbox.graph_errors import GraphError, translate
from engine.mailbox.graph_http import Budget, GraphClient
from engine.models import Agenda
from profiles.models import GraphNotification, GraphSubscription, SyncProfile

log = logging.getLogger(__name__)

GRAPH = "graph"
LIFETIME = dt.timedelta(days=3)
RENEW_BEFORE = dt.timedelta(days=1)
CHECK_EVERY = 60.0            # seconds between full checks of every subscription
FIRST_RETRY = 2.0             # seconds before a subscription that could not be made is tried
CHANGE_TYPES = "created,updated,deleted"
LAG = dt.timedelta(seconds=10)   # how late a journal row may commit (another web process)
KEPT_FOR = dt.timedelta(days=1)
PRUNE_EVERY = 3600.0
Trigger = Callable[[int, str], None]


class NotificationsOff(Exception):
    """No subscriptions can be made; `str()` says why, for the administrator."""


def notification_urls() -> tuple[str, str]:
    """(notificationUrl, lifecycleNotificationUrl), or NotificationsOff."""
    base = (settings.PUBLIC_BASE_URL or "").strip().rstrip("/")
    if not base:
        raise NotificationsOff(gettext(
            "Change notifications are off: this server's public address (PUBLIC_BASE_URL) is "
            "not set, so Microsoft Graph has nowhere to send them. Graph profiles are synced "
            "at their interval."))
    if not base.startswith(("https://", "http://")):
        raise NotificationsOff(gettext(
            "Change notifications are off: PUBLIC_BASE_URL must be an address such as "
            "https://sync.example.com, not %(value)s.") % {"value": base})
    return base + reverse("graph_notifications"), base + reverse("graph_lifecycle")


def resource_of(mailbox: str, agenda: str, folder_id: str) -> str:
    """The Graph resource whose items a folder holds (Graph's documented Outlook paths)."""
    user = f"users/{mailbox}"
    if agenda == Agenda.CONTACTS:
        return f"{user}/contactFolders/{folder_id}/contacts"
    if agenda == Agenda.CALENDAR:
        if folder_id.lower() == "calendar":
            return f"{user}/calendar/events"
        return f"{user}/calendars/{folder_id}/events"
    return f"{user}/mailFolders/{folder_id}/messages"


def wanted_folders(profile: SyncProfile) -> dict[str, str]:
    """Folder id -> agenda for the profile's synced folders (as the listener watches them)."""
    from engine.listen import watched_folders

    try:
        return {folder_id: agenda for folder_id, (agenda, _) in watched_folders(profile).items()}
    except ObjectDoesNotExist:   # an agenda without its settings row: nothing to watch there
        return {}


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _parse_expiry(answer: Any, asked: dt.datetime) -> dt.datetime:
    """The expiry Graph granted (it may shorten what was asked)."""
    text = str((answer or {}).get("expirationDateTime") or "") if isinstance(answer, dict) \
        else ""
    try:
        granted = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return granted if granted.tzinfo else granted.replace(tzinfo=dt.UTC)
    except ValueError:
        return asked


@dataclass
class _Client:
    client: GraphClient
    access: Any


class Subscriptions:
    """Fits the Graph subscriptions to the active Graph profiles (one pass: `check`)."""

    def __init__(self, trigger: Trigger, *, lifetime: dt.timedelta = LIFETIME,
                 renew_before: dt.timedelta = RENEW_BEFORE) -> None:
        self.trigger = trigger
        self.lifetime, self.renew_before = lifetime, renew_before

    def check(self, flagged_only: bool = False) -> None:
        """Make, renew, make again and delete what is due. `flagged_only`: only the
        subscriptions a lifecycle event marked (cheap enough for every second)."""
        try:
            urls: tuple[str, str] | None = notification_urls()
        except NotificationsOff:
            urls = None
        subscriptions = GraphSubscription.objects.select_related("profile__connection")
        if flagged_only:
            subscriptions = subscriptions.filter(Q(renew_now=True) | Q(removed=True))
            if not subscriptions.exists():
                return
        clients: dict[tuple[str, int], _Client] = {}
        try:
            if flagged_only:
                profiles = {s.profile for s in subscriptions}
            else:
                profiles = set(SyncProfile.objects.filter(active=True, connection__kind=GRAPH)
                               .select_related("connection", "contactsettings",
                                               "calendarsettings", "mailsettings")
                               .prefetch_related("mail_folders"))
                self._drop_unwanted(profiles if urls else set(), clients)
            if urls is None:
                return
            for profile in sorted(profiles, key=lambda p: (p.connection_id, p.mailbox)):
                if profile.active and profile.connection.kind == GRAPH:
                    self._fit_profile(profile, urls, clients, flagged_only)
        finally:
            for held in clients.values():
                held.client.close()

    # --- one profile ------------------------------------------------------------------------
    def _fit_profile(self, profile: SyncProfile, urls: tuple[str, str],
                     clients: dict[tuple[str, int], _Client], flagged_only: bool) -> None:
        wanted = wanted_folders(profile)
        existing = {s.folder_id: s for s in profile.graph_subscriptions.all()}
        now = timezone.now()
        for folder_id, subscription in existing.items():
            if folder_id not in wanted:
                self._delete(subscription, clients)
        for folder_id, agenda in wanted.items():
            resource = resource_of(profile.mailbox, agenda, folder_id)
            subscription = existing.get(folder_id)
            if subscription is None:
                if flagged_only:
                    continue
                subscription = GraphSubscription(profile=profile, folder_id=folder_id)
                subscription.set_secret(random_secrets.token_urlsafe(48))   # < 128 chars
            subscription.agenda = agenda
            if (subscription.removed or not subscription.subscription_id
                    or subscription.resource != resource
                    or subscription.notification_url != urls[0]):
                if flagged_only and not subscription.removed:
                    continue
                self._create(subscription, resource, urls, clients)
            elif subscription.renew_now or (subscription.expires is None or
                                            subscription.expires - now < self.renew_before):
                self._renew(subscription, resource, urls, clients)

    def _create(self, subscription: GraphSubscription, resource: str, urls: tuple[str, str],
                clients: dict[tuple[str, int], _Client]) -> None:
        profile = subscription.profile
        held = self._client(profile, clients)
        if subscription.subscription_id and not subscription.removed:
            try:   # its folder or address changed: the old one goes
                self._forget(held, subscription.subscription_id)
            except (MailboxError, OSError) as exc:   # it expires by itself within days
                log.warning("Could not delete the subscription to %s: %s",
                            subscription.resource, exc)
        # A new clientState each time: one leaked with an old subscription is worth nothing.
        client_state = random_secrets.token_urlsafe(48)
        asked = timezone.now() + self.lifetime
        try:
            answer = held.client.call("POST", "/subscriptions", body={
                "changeType": CHANGE_TYPES, "notificationUrl": urls[0],
                "lifecycleNotificationUrl": urls[1], "resource": resource,
                "expirationDateTime": _iso(asked), "clientState": client_state})
            new_id = str((answer or {}).get("id") or "")
            if not new_id:
                raise GraphError(502, "", "Graph answered without a subscription id.")
        except (GraphError, MailboxError, OSError) as exc:
            subscription.subscription_id, subscription.expires = "", None
            subscription.resource, subscription.notification_url = resource, urls[0]
            subscription.removed = subscription.renew_now = False
            subscription.last_error = self._words(exc, held)
            subscription.save()
            log.warning("Could not subscribe to %s: %s", resource, subscription.last_error)
            return
        subscription.set_secret(client_state)
        subscription.subscription_id, subscription.resource = new_id, resource
        subscription.notification_url = urls[0]
        subscription.expires = _parse_expiry(answer, asked)
        subscription.renewed, subscription.last_error = None, ""
        subscription.removed = subscription.renew_now = False
        subscription.save()
        log.info("Subscribed to %s (expires %s)", resource, subscription.expires)
        # Edits made before it existed (or while Graph had removed it) were never notified.
        self.trigger(profile.pk, subscription.agenda)

    def _renew(self, subscription: GraphSubscription, resource: str, urls: tuple[str, str],
               clients: dict[tuple[str, int], _Client]) -> None:
        held = self._client(subscription.profile, clients)
        asked = timezone.now() + self.lifetime
        try:
            answer = held.client.call("PATCH", f"/subscriptions/{subscription.subscription_id}",
                                      body={"expirationDateTime": _iso(asked)})
        except GraphError as exc:
            if exc.status == 404:   # expired or removed meanwhile: made again
                subscription.removed = True
                self._create(subscription, resource, urls, clients)
                return
            self._failed(subscription, self._words(exc, held))
            return
        except (MailboxError, OSError) as exc:
            self._failed(subscription, self._words(exc, held))
            return
        subscription.expires = _parse_expiry(answer, asked)
        subscription.renewed, subscription.renew_now = timezone.now(), False
        subscription.last_error = ""
        subscription.save(update_fields=["expires", "renewed", "renew_now", "last_error"])

    @staticmethod
    def _failed(subscription: GraphSubscription, words: str) -> None:
        subscription.last_error = words
        subscription.save(update_fields=["last_error"])
        log.warning("Could not renew the subscription to %s: %s", subscription.resource, words)

    # --- deleting -----------------------------------------------------------------------------
    def _drop_unwanted(self, profiles: set[SyncProfile],
                       clients: dict[tuple[str, int], _Client]) -> None:
        """Delete the subscriptions of profiles no longer watched (deactivated, moved off
        Graph, or every one when notifications are off)."""
        for subscription in GraphSubscription.objects.select_related(
                "profile__connection").exclude(profile__in=profiles):
            self._delete(subscription, clients)

    def _delete(self, subscription: GraphSubscription,
                clients: dict[tuple[str, int], _Client]) -> None:
        if subscription.subscription_id and subscription.profile.connection.kind == GRAPH:
            try:
                self._forget(self._client(subscription.profile, clients),
                             subscription.subscription_id)
            except (MailboxError, OSError) as exc:
                # Kept, to be deleted at the next check; its notifications are journaled
                # for the profile still, which queues nothing once it is inactive.
                log.warning("Could not delete the subscription to %s: %s",
                            subscription.resource, exc)
                return
        subscription.delete()

    def _forget(self, held: _Client, subscription_id: str) -> None:
        try:
            held.client.call("DELETE", f"/subscriptions/{subscription_id}")
        except GraphError as exc:
            if exc.status != 404:   # gone already is what was wanted
                raise translate(exc, held.access) from exc

    # --- clients ------------------------------------------------------------------------------
    @staticmethod
    def _client(profile: SyncProfile, clients: dict[tuple[str, int], _Client]) -> _Client:
        """One client per connection signing in for every mailbox (app-only), else one per
        profile signing in as itself."""
        connection = profile.connection
        key = ("connection", connection.pk) if connection.uses_own_credentials \
            else ("profile", profile.pk)
        if key not in clients:
            access = access_for(connection, profile.mailbox, profile)
            clients[key] = _Client(GraphClient(access, Budget(access.throttle_budget_seconds)),
                                   access)
        return clients[key]

    @staticmethod
    def _words(exc: Exception, held: _Client) -> str:
        if isinstance(exc, GraphError):
            text = f"{exc} {exc.code} {exc.message}".strip()
            return text[:1000]
        return str(getattr(exc, "message", None) or exc)[:1000]


class Journal:
    """The accepted notifications since the last look: (profile id, agenda, kind)."""

    def __init__(self) -> None:
        self._since: dt.datetime | None = None
        self._seen: dict[int, dt.datetime] = {}
        self._next_prune = 0.0

    def changes(self) -> list[tuple[int, str, str]]:
        now = timezone.now()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY
            GraphNotification.objects.filter(received__lt=now - KEPT_FOR).delete()
        if self._since is None:
            self._since = now - LAG   # from the listener's start, and what came just before
        # Rows received within LAG of the last look are read again (a row given its id
        # before another may commit after it), those read already left out.
        fresh = [row for row in GraphNotification.objects.filter(
            received__gte=self._since - LAG).order_by("pk").values_list(
            "pk", "received", "profile_id", "agenda", "kind") if row[0] not in self._seen]
        self._since = now
        self._seen = {pk: received for pk, received in self._seen.items()
                      if received >= now - 2 * LAG}
        self._seen.update((row[0], row[1]) for row in fresh)
        return [(profile_id, agenda, kind) for _pk, _r, profile_id, agenda, kind in fresh]


class GraphWatch:
    """What the listener runs for Graph: a thread keeping the subscriptions, and the journal
    read on each of its ticks."""

    def __init__(self, trigger: Trigger, *, check_every: float = CHECK_EVERY,
                 lifetime: dt.timedelta = LIFETIME,
                 renew_before: dt.timedelta = RENEW_BEFORE) -> None:
        self.trigger = trigger
        self.check_every = check_every
        self.subscriptions = Subscriptions(trigger, lifetime=lifetime,
                                           renew_before=renew_before)
        self.journal = Journal()
        self._thread: threading.Thread | None = None
        self._stamp: tuple[object, ...] = ()
        self._retry = FIRST_RETRY

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self._keep, args=(stop,), name="graph-subscribe",
                                        daemon=True)
        self._thread.start()

    def _keep(self, stop: threading.Event) -> None:
        from engine.listen import profiles_stamp

        next_check = 0.0
        while not stop.is_set():
            close_old_connections()
            try:
                stamp = profiles_stamp()
                if time.monotonic() >= next_check or stamp != self._stamp:
                    self._stamp = stamp
                    self.subscriptions.check()
                    next_check = time.monotonic() + self._next_delay()
                else:
                    self.subscriptions.check(flagged_only=True)
            except Exception:   # a database hiccup, Graph away: the next round tries again
                log.exception("Keeping the Graph subscriptions failed")
            # No database connection held while waiting (this thread's own).
            connections.close_all()
            stop.wait(1.0)

    def _next_delay(self) -> float:
        """Seconds to the next full check: CHECK_EVERY, or sooner while a subscription could
        not be made (the web server starting, Graph away), backing off."""
        if not GraphSubscription.objects.filter(subscription_id="").exists():
            self._retry = FIRST_RETRY
            return self.check_every
        delay, self._retry = self._retry, min(self._retry * 2, self.check_every)
        return min(delay, self.check_every)

    def tick(self) -> None:
        """Queue the agendas of what Graph notified since the last tick."""
        for profile_id, agenda, _kind in self.journal.changes():
            self.trigger(profile_id, agenda)


def state(profiles: Any) -> str:
    """Change notifications of these profiles in words, for an admin page."""
    try:
        notification_urls()
    except NotificationsOff as exc:
        return str(exc)
    subscriptions = list(GraphSubscription.objects.filter(profile__in=profiles))
    if not subscriptions:
        return gettext("No subscriptions yet: the listener (manage.py listen) makes them for "
                       "active profiles. Until then Graph profiles are synced at their "
                       "interval.")
    working = [s for s in subscriptions if s.subscription_id]
    text = gettext("%(working)s of %(total)s synced folders send change notifications.") % {
        "working": len(working), "total": len(subscriptions)}
    failing = [s for s in subscriptions if s.last_error]
    if failing:
        text += " " + gettext("Last error: %(error)s") % {"error": failing[0].last_error}
    refused = sum(s.refused for s in subscriptions)
    if refused:
        text += " " + gettext("%(count)s notifications ignored (wrong clientState).") % {
            "count": refused}
    return text
