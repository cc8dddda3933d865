"""Server affinity of notification subscriptions: the X-BackEndOverrideCookie.

Exchange 2013+ and Exchange Online keep subscriptions on one Mailbox server; front ends route
a request there only if the client keeps affinity ("Maintain affinity between a group of
subscriptions and the Mailbox server in Exchange", learn.microsoft.com, EWS):

* a Subscribe sent with `X-PreferServerAffinity: true` and `X-AnchorMailbox` is answered with
  `Set-Cookie: X-BackEndOverrideCookie=<mailbox server>~<version>; path=/; HttpOnly` (plus
  `secure` over TLS); a request that already carries the cookie gets no new one;
* the client sends that cookie (`Cookie:`) on every later Subscribe, GetStreamingEvents,
  GetEvents of the group; the cookie routes; without it `X-AnchorMailbox` routes;
* a request routed to a server that does not hold the subscription fails with
  ErrorSubscriptionNotFound.

ewsim has one store, so by default routing changes nothing: it hands out the cookie and
records, per notification request, what affinity the client kept (`GET /_control/affinity`).
With the `strict_affinity` setting it routes as a farm of `BACKENDS` mailbox servers would:
a subscription lives on the server its Subscribe was routed to, and a request routed
elsewhere gets ErrorSubscriptionNotFound, every time (Exchange: whenever the load balancer
picks another server).
"""

from __future__ import annotations

import threading
import zlib
from collections import deque
from http.cookies import CookieError, SimpleCookie
from typing import Any

COOKIE = "X-BackEndOverrideCookie"
BACKENDS = 16          # mailbox servers a strict-affinity farm spreads anchors over
KEPT = 500             # requests remembered by the log
VERSION = 1942061183   # the "~version" part Exchange appends (a build number)


def header(headers: dict[str, str], name: str) -> str:
    """A request header, whatever case the client wrote its name in."""
    name = name.lower()
    return next((v for k, v in headers.items() if k.lower() == name), "")


def backend_for(mailbox: str) -> str:
    """The cookie value naming the mailbox server that holds `mailbox` (stable per address)."""
    number = zlib.crc32(mailbox.strip().lower().encode()) % BACKENDS
    return f"EWSIM{number:02d}MB.ewsim.example~{VERSION}"


def request_cookie(headers: dict[str, str]) -> str | None:
    """The X-BackEndOverrideCookie the request's Cookie header carries, if any."""
    raw = header(headers, "Cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def prefers_affinity(headers: dict[str, str]) -> bool:
    return header(headers, "X-PreferServerAffinity").strip().lower() == "true"


def route(headers: dict[str, str], mailbox: str) -> str:
    """The mailbox server a request reaches: its cookie's, else its anchor mailbox's."""
    return request_cookie(headers) or backend_for(
        header(headers, "X-AnchorMailbox").strip() or mailbox)


def set_cookie(value: str, secure: bool) -> tuple[str, str]:
    # As Exchange's front end writes it: HttpOnly, Secure only over TLS.
    return ("Set-Cookie", f"{COOKIE}={value}; path=/; HttpOnly" + ("; secure" if secure else ""))


class AffinityLog:
    """What affinity each notification request kept, for tests: `GET /_control/affinity`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: deque[dict[str, Any]] = deque(maxlen=KEPT)
        self.strict = False

    def record(self, operation: str, headers: dict[str, str], mailbox: str,
               subscription_ids: list[str], issued: str | None) -> None:
        entry = {
            "operation": operation,
            "mailbox": mailbox,
            "anchor_mailbox": header(headers, "X-AnchorMailbox").strip().lower() or None,
            "prefer_server_affinity": prefers_affinity(headers),
            "cookie": request_cookie(headers),
            # exchangelib's own services send the value as a header, not as the cookie.
            "cookie_as_header": header(headers, COOKIE).strip() or None,
            "set_cookie": issued,
            "subscriptions": subscription_ids,
        }
        with self._lock:
            self._requests.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
