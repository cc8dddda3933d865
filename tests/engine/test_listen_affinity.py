"""The listener keeps its group with the Mailbox server that holds the subscriptions, and
loses no change while its stream reconnects.

Microsoft, "Maintain affinity between a group of subscriptions and the Mailbox server in
Exchange" (learn.microsoft.com, EWS): the anchor's Subscribe carries X-AnchorMailbox and
X-PreferServerAffinity: true and gets the X-BackEndOverrideCookie cookie back; every later
Subscribe and the GetStreamingEvents of the group carry the same anchor, the header, and the
cookie. Against ewsim over HTTP, which records each notification request's affinity and,
with `strict_affinity`, refuses a request routed elsewhere (ErrorSubscriptionNotFound).
"""

from __future__ import annotations

import pytest

from ewsim import affinity
from ewsim.testing import SimHandle

from .listen_helpers import new_contact, profile_on, queued_for, streamed, until
from .sync_helpers import make_profile

pytestmark = pytest.mark.django_db(transaction=True)

BOB = "bob@example.com"   # sorts after alice@example.com: Alice is the group's anchor


def test_every_request_of_the_group_carries_the_anchor_and_its_cookie(ewsim: SimHandle,
                                                                      listen) -> None:  # type: ignore[no-untyped-def]
    ewsim.control.add_user(BOB, "bob-secret")
    ewsim.control.settings(strict_affinity=True)
    alice = make_profile(ewsim)
    bob = profile_on(alice.connection, BOB)
    _, queued = listen()
    until(lambda: set(streamed(ewsim)) == {ewsim.user, BOB}, "both mailboxes streamed")
    with ewsim.server.store.lock:
        ours = set(ewsim.server.store.notifications.subscriptions)
    # A listener of an earlier test may still be unsubscribing its own: only requests naming
    # this test's subscriptions (or none) count.
    requests = [r for r in ewsim.control.affinity() if set(r["subscriptions"]) <= ours]
    cookie = affinity.backend_for(ewsim.user)   # handed to the anchor's Subscribe
    assert [(r["operation"], r["mailbox"], r["set_cookie"]) for r in requests[:2]] == [
        ("Subscribe", ewsim.user, cookie), ("Subscribe", BOB, None)]
    for request in requests:
        assert request["anchor_mailbox"] == ewsim.user and request["prefer_server_affinity"]
    # Sent back as a cookie (not a header of that name) from the second request on, the
    # stream's included, whichever pooled session sends it.
    assert [r["cookie"] for r in requests] == [None] + [cookie] * (len(requests) - 1)
    assert {r["cookie_as_header"] for r in requests} == {None}
    assert "GetStreamingEvents" in {r["operation"] for r in requests}
    # Routed where the subscriptions are, the stream works (strict: elsewhere they fail).
    for profile in (alice, bob):
        new_contact(ewsim, profile.mailbox)
        until(lambda profile=profile: queued_for(queued, profile),
              f"a contacts sync of {profile.mailbox}")


def test_a_change_made_while_the_stream_reconnects_is_not_lost(ewsim: SimHandle,
                                                               listen) -> None:  # type: ignore[no-untyped-def]
    ewsim.control.add_user(BOB, "bob-secret")
    alice = make_profile(ewsim)
    _, queued = listen(minute_seconds=1.0, refresh=0.2)   # keep-alives every half second
    until(lambda: set(streamed(ewsim)) == {ewsim.user}, "Alice streamed")
    assert ewsim.control.counters()["GetStreamingEvents"] == 1
    # Bob joins: the listener closes its stream at the next keep-alive and opens another,
    # which ewsim holds back a moment before it takes Alice's subscription over.
    ewsim.control.fault("delay", operation="GetStreamingEvents", delay_ms=800)
    profile_on(alice.connection, BOB)
    until(lambda: ewsim.control.counters().get("GetStreamingEvents") == 2,
          "the listener closed its stream and opened another")
    new_contact(ewsim, ewsim.user)   # meanwhile, in Alice's mailbox
    until(lambda: queued_for(queued, alice), "a contacts sync of Alice")
    assert set(streamed(ewsim)) == {ewsim.user, BOB}
