"""The address Raynet posts its webhook deliveries to: /hooks/raynet/<connection id>/.

Answers at once. A delivery whose `X-RAYNETCRM-Token` is not the connection's hook secret is
refused with 403, counted and logged, and leaves nothing behind; a good one is journaled
for the connection's organization, and the listener queues the syncs it concerns
(engine/crmstore/raynet_watch.py). No sync work is done here.
"""

from __future__ import annotations

import json
import logging

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from engine.crmstore import raynet_webhooks

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024   # a delivery is a few hundred bytes


@csrf_exempt   # Raynet signs with its token, not with a session's CSRF cookie
@require_POST
def raynet_webhook(request: HttpRequest, connection_id: int) -> HttpResponse:
    hook = raynet_webhooks.token_matches(connection_id,
                                         request.headers.get("X-RAYNETCRM-Token"))
    if hook is None:
        return HttpResponseForbidden("refused")
    if len(request.body) > MAX_BODY:
        return HttpResponseBadRequest("too long")
    try:
        delivery = raynet_webhooks.parse(json.loads(request.body or b"null"))
    except (ValueError, raynet_webhooks.BadDelivery) as exc:
        # Taken all the same (sent again it would be no better); the log says why. The
        # change, if there was one, is synced at the interval.
        log.warning("A Raynet webhook delivery for connection %s was not understood: %s",
                    connection_id, exc)
        return HttpResponse(status=204)
    raynet_webhooks.journal(hook, delivery)
    return HttpResponse(status=204)
