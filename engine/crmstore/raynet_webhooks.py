"""Raynet webhooks: registering a connection's hook and taking Raynet's deliveries.

- `register` (the admin's "Test connection" and "Register webhook"): one hook per connection
  at PUBLIC_BASE_URL/hooks/raynet/<connection id>/, with a new random secret each time;
  the hooks Raynet already has at that address (an earlier registration) are deleted, so
  registering again replaces, never piles up.
- `receive` (the view, engine/raynet_hooks.py): checks the delivery's `X-RAYNETCRM-Token`
  against the connection's hook, in constant time, and journals the event for the
  connection's organization. Nothing is synced in the request: the listener reads the
  journal every second and queues the syncs, debounced (engine/crmstore/raynet_watch.py).
  A deletion is also marked in the backend's journal of known ids (raynet_cursor.py), so
  the next run reports it rather than the next full comparison of ids.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import logging
import secrets as random_secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from engine.crmstore.raynet_client import DEFAULT_BASE_URL, NotFound, RaynetError
from engine.crmstore.raynet_cursor import KnownIds
from engine.crmstore.raynet_kind import instance_key_of
from profiles.models import CrmConnection, RaynetWebhook, RaynetWebhookEvent

log = logging.getLogger(__name__)

EVENTS = ("record.created", "record.updated", "record.deleted")
# Journal rows are kept this long: long enough for the listener (it reads them within a
# second) and for a backend's read after a failed run or a pause of a few days.
KEPT_FOR = dt.timedelta(days=14)


class WebhooksOff(Exception):
    """Webhooks cannot be registered; `str()` says why, for the administrator."""


# --- registering -------------------------------------------------------------------------
def hook_url(connection: CrmConnection) -> str:
    base = (settings.PUBLIC_BASE_URL or "").strip().rstrip("/")
    if not base:
        raise WebhooksOff(gettext(
            "Webhooks are off: this server's public address (PUBLIC_BASE_URL) is not set, so "
            "Raynet has nowhere to send its changes. Raynet's changes are synced at each "
            "profile's interval."))
    if not base.startswith(("https://", "http://")):
        raise WebhooksOff(gettext(
            "Webhooks are off: PUBLIC_BASE_URL must be an address such as "
            "https://sync.example.com, not %(value)s.") % {"value": base})
    return base + reverse("raynet_webhook", args=[connection.pk])


def register(connection: CrmConnection) -> str:
    """Register (again) the connection's webhook with its Raynet instance; returns what to
    tell the administrator. Raises WebhooksOff (why there are none) or RaynetError."""
    from engine.crmstore.raynet_kind import client_for

    url = hook_url(connection)
    client = client_for(connection)
    stored = RaynetWebhook.objects.filter(connection=connection).first()
    listed = (client.get("webhook/").get("data") or {}).get("webhooks") or []
    stale = {str(hook.get("webhookId")) for hook in listed if hook.get("url") == url}
    if stored is not None and stored.hook_id:
        stale.add(stored.hook_id)
    secret = random_secrets.token_urlsafe(32)
    answer = client.call("PUT", "webhook/", body={
        "url": url, "secretToken": secret, "events": list(EVENTS)})
    hook_id = str(((answer or {}).get("data") or {}).get("uuid") or "")
    hook = stored or RaynetWebhook(connection=connection)
    hook.instance = connection.setting("instance")
    hook.base_url = connection.setting("base_url") or DEFAULT_BASE_URL
    hook.hook_id, hook.url = hook_id, url
    hook.set_secret(secret)
    hook.save()
    # Only now: until the new hook's secret is stored, the old one still takes deliveries.
    for old in sorted(stale - {hook_id}):
        with contextlib.suppress(NotFound):   # deleted in Raynet meanwhile
            client.call("DELETE", f"webhook/{old}/")
    return gettext("Raynet sends its changes to %(url)s: a change there is synced within "
                   "seconds.") % {"url": url}


def register_and_say(connection: CrmConnection) -> tuple[bool | None, str]:
    """`register`, in words: (True, done), (None, why webhooks are off), (False, error)."""
    try:
        return True, register(connection)
    except WebhooksOff as exc:
        return None, str(exc)
    except RaynetError as exc:
        return False, gettext("The webhook could not be registered: %(reason)s Raynet's "
                              "changes are synced at each profile's interval.") % {
            "reason": exc}


def is_current(hook: RaynetWebhook, connection: CrmConnection) -> bool:
    """Whether the hook was registered with the instance the connection reaches now."""
    return (connection.kind == "raynet"
            and hook.instance == connection.setting("instance")
            and hook.base_url == (connection.setting("base_url") or DEFAULT_BASE_URL))


# --- receiving ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    event: str
    entity: str
    entity_id: int
    event_id: str


class BadDelivery(ValueError):
    pass


def parse(payload: Any) -> Delivery:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise BadDelivery("not a Raynet webhook delivery")
    data = payload["data"]
    try:
        entity_id = int(data.get("entityId"))
    except (TypeError, ValueError) as exc:
        raise BadDelivery("no entityId") from exc
    event, entity = str(payload.get("type") or ""), str(data.get("entityName") or "")
    if event not in EVENTS or not entity:
        raise BadDelivery(f"unknown event {event!r} of {entity!r}")
    return Delivery(event, entity.lower(), entity_id, str(payload.get("eventId") or "")[:64])


def token_matches(connection_id: int, token: str | None) -> RaynetWebhook | None:
    """The connection's hook when `token` is its secret (compared in constant time) and it
    was registered for the instance the connection reaches now; None otherwise, counted."""
    hook = RaynetWebhook.objects.select_related("connection").filter(
        connection_id=connection_id).first()
    if hook is not None:
        try:
            expected = hook.get_secret()
        except Exception:   # an undecryptable secret (keys changed): refused like a wrong one
            log.exception("The Raynet webhook secret of connection %s cannot be read",
                          connection_id)
            expected = ""
        ok = bool(token) and bool(expected) and hmac.compare_digest(
            token.encode(), expected.encode())
        if ok and is_current(hook, hook.connection):
            return hook
        RaynetWebhook.objects.filter(pk=hook.pk).update(
            refused=F("refused") + 1, last_refused=timezone.now())
    log.warning("Refused a Raynet webhook delivery for connection %s: %s", connection_id,
                "no token" if not token else "wrong token or no current hook")
    return None


def journal(hook: RaynetWebhook, delivery: Delivery) -> bool:
    """Note the event for the hook's organization; False for a repeat of one noted already
    (Raynet sends a delivery again when it missed the answer)."""
    try:
        with transaction.atomic():
            RaynetWebhookEvent.objects.create(
                organization_id=hook.connection.organization_id, event=delivery.event,
                entity=delivery.entity, entity_id=delivery.entity_id,
                event_id=delivery.event_id)
    except IntegrityError:
        return False
    if delivery.event == "record.deleted":
        # Gone from the journal of known ids now (raynet_cursor.py): the next run of a profile
        # reports the deletion, not the next full comparison of ids, an hour on.
        KnownIds(instance_key_of(hook.base_url, hook.instance)).gone(
            delivery.entity, [delivery.entity_id])
    return True


def state(connection: CrmConnection) -> str:
    """The connection's webhook in words, for its admin page."""
    try:
        url = hook_url(connection)
    except WebhooksOff as exc:
        return str(exc)
    hook = RaynetWebhook.objects.filter(connection=connection).first()
    if hook is None:
        return gettext("Not registered: “Test connection” registers it. Until then "
                       "Raynet's changes are synced at each profile's interval.")
    if not is_current(hook, connection) or hook.url != url:
        return gettext("Registered for another instance or address: “Test "
                       "connection” registers it again. Until then Raynet's changes "
                       "are synced at each profile's interval.")
    text = gettext("Raynet posts its changes to %(url)s (registered %(when)s).") % {
        "url": hook.url, "when": timezone.localtime(hook.registered).strftime("%Y-%m-%d %H:%M")}
    if hook.refused:
        text += " " + gettext("%(count)s deliveries refused (wrong or missing token), the "
                              "last at %(when)s.") % {
            "count": hook.refused,
            "when": timezone.localtime(hook.last_refused).strftime("%Y-%m-%d %H:%M")
            if hook.last_refused else "?"}
    return text


def prune(now: dt.datetime | None = None) -> int:
    return RaynetWebhookEvent.objects.filter(
        received__lt=(now or timezone.now()) - KEPT_FOR).delete()[0]
