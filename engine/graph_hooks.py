"""The addresses Microsoft Graph posts to: /hooks/graph/ (change notifications) and
/hooks/graph/lifecycle/ (lifecycle events), both made by engine/graph_watch.py.

Answers at once and does no sync work:
- `?validationToken=…` (Graph checking the address while a subscription is made or renewed):
  the token echoed as text/plain, 200;
- otherwise the JSON `value` list: each entry's subscription is looked up by Graph's id and
  its clientState compared in constant time; a wrong or unknown one is ignored, counted on
  the subscription and logged. An accepted change is journaled for the subscription's own
  profile and agenda (never one named in the payload), which the listener reads every second
  and queues, debounced. Lifecycle events: `reauthorizationRequired` and
  `subscriptionRemoved` mark the subscription for the manager (renew, make again), `missed`
  journals a sync of the agenda. Answered 202.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from django.db.models import F
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from profiles.models import GraphNotification, GraphSubscription

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024        # Graph batches notifications; each is a few hundred bytes
MAX_TOKEN = 4096              # a validation token is far shorter
REAUTHORIZE, REMOVED, MISSED = "reauthorizationRequired", "subscriptionRemoved", "missed"


@csrf_exempt   # Graph proves itself with the clientState, not with a CSRF cookie
@require_POST
def graph_notifications(request: HttpRequest) -> HttpResponse:
    return _answer(request)


@csrf_exempt
@require_POST
def graph_lifecycle(request: HttpRequest) -> HttpResponse:
    return _answer(request)


def _answer(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("validationToken")
    if token is not None:
        if len(token) > MAX_TOKEN:
            return HttpResponseBadRequest("too long")
        return HttpResponse(token, content_type="text/plain; charset=utf-8")
    if len(request.body) > MAX_BODY:
        return HttpResponseBadRequest("too long")
    try:
        payload = json.loads(request.body or b"null")
    except ValueError:
        return HttpResponseBadRequest("not JSON")
    entries = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        return HttpResponseBadRequest("not a Graph notification")
    accept(entries)
    return HttpResponse(status=202)


def accept(entries: list[Any]) -> int:
    """Journal what the entries ask for; returns how many were accepted."""
    wanted: set[tuple[int, str, str]] = set()   # one row per profile, agenda, kind
    accepted = 0
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        subscription = _checked(entry)
        if subscription is None:
            continue
        accepted += 1
        event = str(entry.get("lifecycleEvent") or "")
        if event == REAUTHORIZE:
            GraphSubscription.objects.filter(pk=subscription.pk).update(renew_now=True)
        elif event == REMOVED:
            GraphSubscription.objects.filter(pk=subscription.pk).update(removed=True)
        elif event == MISSED:
            wanted.add((subscription.profile_id, subscription.agenda, GraphNotification.MISSED))
        elif event:
            log.info("Ignored Graph lifecycle event %r of subscription %s", event,
                     subscription.subscription_id)
        else:
            wanted.add((subscription.profile_id, subscription.agenda, GraphNotification.CHANGE))
    GraphNotification.objects.bulk_create(
        GraphNotification(profile_id=profile_id, agenda=agenda, kind=kind)
        for profile_id, agenda, kind in sorted(wanted))
    return accepted


def _checked(entry: dict[str, Any]) -> GraphSubscription | None:
    """The entry's subscription when its clientState is the one stored; None otherwise,
    logged, and counted on the subscription when there is one."""
    subscription_id = str(entry.get("subscriptionId") or "")
    given = str(entry.get("clientState") or "")
    subscription = (GraphSubscription.objects.filter(subscription_id=subscription_id).first()
                    if subscription_id else None)
    if subscription is None:
        log.warning("Ignored a Graph notification of an unknown subscription %r",
                    subscription_id[:80])
        return None
    try:
        expected = subscription.get_secret()
    except Exception:   # an undecryptable secret (keys changed): refused like a wrong one
        log.exception("The clientState of Graph subscription %s cannot be read", subscription.pk)
        expected = ""
    if given and expected and hmac.compare_digest(given.encode(), expected.encode()):
        return subscription
    GraphSubscription.objects.filter(pk=subscription.pk).update(
        refused=F("refused") + 1, last_refused=timezone.now())
    log.warning("Ignored a Graph notification with a wrong clientState for subscription %s "
                "(profile %s)", subscription.subscription_id, subscription.profile_id)
    return None
