"""watch_many keeps the group's X-BackEndOverrideCookie to the group's own requests.

Microsoft, "Maintain affinity between a group of subscriptions and the Mailbox server in
Exchange" (learn.microsoft.com, EWS): the cookie routes a request to the Mailbox server of
the group that got it. exchangelib's sessions are pooled per endpoint and credentials, and
shared by every group (and every sync) of a service account: a cookie left in a session's
jar would go out with whatever request that session sends next.
"""

from __future__ import annotations

from engine.mailbox.base import FolderInfo, MailboxAccess, WatchTarget
from engine.mailbox.ews import EwsMailbox
from engine.records import Kind
from ewsim import affinity
from ewsim.testing import SimHandle

from .conftest import access_to

BOB = "bob@example.com"


def test_the_cookie_goes_with_the_group_and_not_into_the_pooled_sessions(
        ewsim: SimHandle) -> None:
    ewsim.control.settings(notification_minute_seconds=1.0, strict_affinity=True)
    ewsim.control.add_user("svc@example.com", "svc-secret", can_impersonate=["*"])
    ewsim.control.add_user(BOB, "bob-secret")

    def as_service(mailbox: str) -> MailboxAccess:
        return access_to(ewsim, mailbox=mailbox, username="svc@example.com",
                         secret="svc-secret", impersonate=True)

    contacts = FolderInfo("contacts", "Contacts", Kind.CONTACTS)
    targets = [WatchTarget(1, as_service(ewsim.user), (contacts,)),
               WatchTarget(2, as_service(BOB), (contacts,))]
    with EwsMailbox(targets[0].access) as watcher:
        # Ends at the stream's first document (its ConnectionStatus OK).
        assert list(watcher.watch_many(targets, minutes=1, until=lambda: True)) == []
        pool = list(watcher.account.protocol._session_pool.queue)
        with ewsim.server.store.lock:
            ours = set(ewsim.server.store.notifications.subscriptions)
    assert pool and not [c for s in pool for c in s.cookies if c.name == affinity.COOKIE]
    cookie = affinity.backend_for(ewsim.user)
    # A listener of an earlier test may still be unsubscribing its own: only requests
    # naming this test's subscriptions (or none) count.
    requests = [(r["operation"], r["cookie"], r["set_cookie"])
                for r in ewsim.control.affinity() if set(r["subscriptions"]) <= ours]
    # Closing the backend unsubscribes both, with the cookie too.
    assert requests == [("Subscribe", None, cookie), ("Subscribe", cookie, None),
                        ("GetStreamingEvents", cookie, None), ("Unsubscribe", cookie, None),
                        ("Unsubscribe", cookie, None)]
