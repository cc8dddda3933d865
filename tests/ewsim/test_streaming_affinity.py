"""The X-BackEndOverrideCookie of notification subscriptions, as Exchange 2013+ hands it out.

Microsoft, "Maintain affinity between a group of subscriptions and the Mailbox server in
Exchange" (learn.microsoft.com/exchange/client-developer/exchange-web-services/
how-to-maintain-affinity-between-group-of-subscriptions-and-mailbox-server): a Subscribe
with `X-AnchorMailbox` and `X-PreferServerAffinity: true` is answered with
`Set-Cookie: X-BackEndOverrideCookie=<server>~<number>; path=/; secure; HttpOnly`; later
requests send it back as a cookie (the response to one that does carries none); the cookie
routes, without it X-AnchorMailbox does; a request that reaches a Mailbox server without
the subscription fails with ErrorSubscriptionNotFound.
"""

from __future__ import annotations

import re

import requests
from lxml import etree

from ewsim import affinity
from ewsim.ns import M
from ewsim.testing import SimHandle

from .conftest import make_account
from .streaming_helpers import get_events_body, post, streaming_body, subscribe_body

COOKIE = re.compile(r"^X-BackEndOverrideCookie=([^;]+~\d+); path=/; HttpOnly$")
BOB = "bob@example.com"


def _answer(response) -> tuple[str, etree._Element]:  # type: ignore[no-untyped-def]
    msg = etree.fromstring(response.content).find(f".//{{{M}}}ResponseMessages")[0]
    return msg.findtext(f"{{{M}}}ResponseCode"), msg


def test_subscribe_asking_for_affinity_gets_the_cookie_once(ewsim: SimHandle) -> None:
    first = post(ewsim, subscribe_body(), X_AnchorMailbox=ewsim.user,
                 X_PreferServerAffinity="true")
    assert _answer(first)[0] == "NoError"
    match = COOKIE.match(first.headers["Set-Cookie"])   # no `secure` over plain http
    assert match is not None
    cookie = match.group(1)
    assert cookie == affinity.backend_for(ewsim.user)
    # The next subscription of the group sends it back: no new cookie.
    again = post(ewsim, subscribe_body(), X_AnchorMailbox=ewsim.user,
                 X_PreferServerAffinity="true", Cookie=f"X-BackEndOverrideCookie={cookie}")
    assert _answer(again)[0] == "NoError" and "Set-Cookie" not in again.headers
    # Without X-PreferServerAffinity nobody asked for affinity.
    plain = post(ewsim, subscribe_body(), X_AnchorMailbox=ewsim.user)
    assert "Set-Cookie" not in plain.headers
    assert [(r["prefer_server_affinity"], r["cookie"], r["set_cookie"], r["anchor_mailbox"])
            for r in ewsim.control.affinity()] == [
        (True, None, cookie, ewsim.user), (True, cookie, None, ewsim.user),
        (False, None, None, ewsim.user)]


def test_a_stream_opened_without_the_cookie_gets_one_and_is_recorded(ewsim: SimHandle) -> None:
    ewsim.control.settings(notification_minute_seconds=0.2)
    _, msg = _answer(post(ewsim, subscribe_body(), X_PreferServerAffinity="true"))
    sub_id = msg.findtext(f"{{{M}}}SubscriptionId")
    stream = post(ewsim, streaming_body(sub_id), X_PreferServerAffinity="true")
    assert stream.status_code == 200 and COOKIE.match(stream.headers["Set-Cookie"])
    record = ewsim.control.affinity()[-1]
    assert record["operation"] == "GetStreamingEvents" and record["subscriptions"] == [sub_id]
    assert record["cookie"] is None and record["anchor_mailbox"] is None


def test_unmodified_exchangelib_sends_the_value_as_a_header(ewsim: SimHandle) -> None:
    # exchangelib keeps the cookie's value on the account and sends it as a header of that
    # name: what ewsim records as `cookie_as_header`, which routes nothing.
    account = make_account(ewsim)
    sub_id = account.inbox.subscribe_to_streaming()
    issued = ewsim.control.affinity()[-1]["set_cookie"]
    assert issued and account.affinity_cookie == issued
    account.inbox.unsubscribe(sub_id)
    record = ewsim.control.affinity()[-1]
    assert record["operation"] == "Unsubscribe" and record["cookie_as_header"] == issued


def test_strict_affinity_refuses_a_request_routed_to_another_mailbox_server(
        ewsim: SimHandle) -> None:
    ewsim.control.add_user(BOB, "bob-secret")
    assert affinity.backend_for(BOB) != affinity.backend_for(ewsim.user)
    ewsim.control.settings(strict_affinity=True)
    answer = post(ewsim, subscribe_body("Pull"), X_AnchorMailbox=ewsim.user,
                  X_PreferServerAffinity="true")
    cookie = COOKIE.match(answer.headers["Set-Cookie"]).group(1)
    _, msg = _answer(answer)
    sub_id, watermark = msg.findtext(f"{{{M}}}SubscriptionId"), msg.findtext(f"{{{M}}}Watermark")
    body = get_events_body(sub_id, watermark)
    # Routed by another anchor mailbox to a server that never heard of the subscription.
    assert _answer(post(ewsim, body, X_AnchorMailbox=BOB))[0] == "ErrorSubscriptionNotFound"
    # The cookie routes, whatever the anchor; without it the anchor does.
    assert _answer(post(ewsim, body, X_AnchorMailbox=BOB,
                        Cookie=f"X-BackEndOverrideCookie={cookie}"))[0] == "NoError"
    assert _answer(post(ewsim, body, X_AnchorMailbox=ewsim.user))[0] == "NoError"
    # One store behind one server, unless told to be strict.
    ewsim.control.settings(strict_affinity=False)
    assert _answer(post(ewsim, body, X_AnchorMailbox=BOB))[0] == "NoError"


def test_over_tls_the_cookie_is_secure(ewsim: SimHandle) -> None:
    # Exchange's front end marks it Secure when the request came over TLS.
    answer = requests.post(f"{ewsim.https_base_url}/EWS/Exchange.asmx", data=subscribe_body(),
                           auth=(ewsim.user, ewsim.password), verify=ewsim.tls_ca_file,
                           headers={"Content-Type": "text/xml; charset=utf-8",
                                    "X-PreferServerAffinity": "true"}, timeout=30)
    assert _answer(answer)[0] == "NoError"
    assert answer.headers["Set-Cookie"] == (
        f"X-BackEndOverrideCookie={affinity.backend_for(ewsim.user)}; path=/; HttpOnly; secure")
