"""Watching with EWS: streaming subscriptions, for one mailbox or a group over one stream."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from exchangelib import errors as exchange_errors
from exchangelib.services import GetStreamingEvents, SubscribeToStreaming, Unsubscribe
from exchangelib.util import MNS

from engine.mailbox.base import (
    AuthenticationFailed,
    ConnectionRefused,
    DnsFailure,
    FolderInfo,
    MailboxError,
    ServiceUnavailable,
    Throttled,
    TimedOut,
    TlsFailure,
    WatchReport,
    WatchTarget,
)
from engine.mailbox.ews_connection import EwsConnection
from engine.mailbox.ews_errors import translate_error
from engine.mailbox.ews_mapping import DISTINGUISHED
from engine.mailbox.ews_protocol import run_budget

# Mailboxes per streaming connection: Microsoft's affinity groups hold at most 200 ("Maintain
# affinity between a group of subscriptions and the Mailbox server").
WATCH_GROUP_SIZE = 200


class EwsStreaming(EwsConnection):
    """EwsMailbox's watching: streaming subscriptions."""

    watch_group_size = WATCH_GROUP_SIZE

    def watch(self, folders: Sequence[FolderInfo], minutes: int = 30) -> Iterator[set[str]]:
        """Wait for changes in these folders (a streaming subscription); yield the ids (as
        given) of the folders that changed, as Exchange reports them. Returns when Exchange
        closes the connection after `minutes`; the caller watches again. Notifications only
        trigger syncs: a change missed between two connections is found by the next sync."""
        ours = {self._describe(f.id).get("FolderId") or f.id: f.id for f in folders}
        affinity = _Affinity()
        with self._errors():
            subscription = _GroupSubscribe(account=self.account, affinity=affinity).get(
                folders=[self._folder(f) for f in folders],
                event_types=SubscribeToStreaming.EVENT_TYPES)
        try:
            with self._errors():
                stream = _GroupStreamingEvents(account=self.account, affinity=affinity,
                                               until=lambda: False)
                for notification in stream.call(subscription_ids=[subscription],
                                                connection_timeout=minutes):
                    changed = {ours[e.parent_folder_id.id] for e in notification.events
                               if getattr(e, "parent_folder_id", None) is not None
                               and e.parent_folder_id.id in ours}
                    if changed:
                        yield changed
        finally:
            with contextlib.suppress(Exception):   # it expires on its own anyway
                _GroupUnsubscribe(account=self.account, affinity=affinity).get(
                    subscription_id=subscription)

    def watch_many(self, targets: Sequence[WatchTarget], minutes: int = 30,
                   until: Callable[[], bool] | None = None) -> Iterator[WatchReport]:
        """One streaming subscription per mailbox, made as that mailbox (impersonation), and
        one GetStreamingEvents request carrying them all (see MailboxBackend.watch_many)."""
        if self._watch_group is None:
            self._watch_group = WatchGroup(self)
        # A stream is a run of its own: the throttling budget starts afresh with each (this
        # object lives as long as the listener's group, far beyond one budget).
        run_budget.deadline = time.monotonic() + self.access.throttle_budget_seconds
        return self._watch_group.watch(targets, minutes, until or (lambda: False))


# --- watching a group of mailboxes over one stream (watch_many) -----------------------------
RESUBSCRIBE_ROUNDS = 3   # refusals in a row within one watch_many() call before it gives up
# Failures of the connection as a whole: every mailbox of the group would fail alike.
_CONNECTION_WIDE = (AuthenticationFailed, ConnectionRefused, DnsFailure, TlsFailure, TimedOut,
                    ServiceUnavailable, Throttled)
# Answers meaning Exchange does not know a subscription (any more): it is made again.
_SUBSCRIPTIONS_GONE = (exchange_errors.ErrorInvalidSubscription,
                       exchange_errors.ErrorSubscriptionNotFound,
                       exchange_errors.ErrorExpiredSubscription,
                       exchange_errors.ErrorSubscriptionAccessDenied,
                       exchange_errors.ErrorNewEventStreamConnectionOpened)


AFFINITY_COOKIE = "X-BackEndOverrideCookie"


class _Affinity:
    """Microsoft's recipe for a group of subscriptions ("Maintain affinity between a group of
    subscriptions and the Mailbox server in Exchange"): every request of the group names the
    same anchor mailbox (X-AnchorMailbox), asks for affinity (X-PreferServerAffinity: true)
    and carries the X-BackEndOverrideCookie cookie the first subscription got back, so that
    load balancers send them all to the Mailbox server that holds the subscriptions
    (elsewhere they are unknown: ErrorSubscriptionNotFound)."""

    def __init__(self) -> None:
        self.anchor = ""               # the first mailbox subscribed, in address order
        self.cookie: str | None = None


class _AffineService:
    """An account service sent with the group's affinity headers instead of its account's."""

    def __init__(self, *args: Any, affinity: _Affinity, **kwargs: Any) -> None:
        self.affinity = affinity
        super().__init__(*args, **kwargs)

    def _extra_headers(self) -> dict[str, str]:
        headers = super()._extra_headers()  # type: ignore[misc]
        # exchangelib sends the value as a header of that name, which is not the cookie
        # Exchange's front ends route by; the group's cookie goes as a cookie.
        headers.pop(AFFINITY_COOKIE, None)
        headers["X-PreferServerAffinity"] = "true"
        if self.affinity.anchor:
            headers["X-AnchorMailbox"] = self.affinity.anchor
        if self.affinity.cookie:
            # An explicit Cookie header: the pooled session's jar is not consulted, so the
            # cookie reaches the request whichever session of the pool sends it.
            headers["Cookie"] = f"{AFFINITY_COOKIE}={self.affinity.cookie}"
        return headers

    def _handle_response_cookies(self, session: Any) -> None:
        super()._handle_response_cookies(session)  # type: ignore[misc]
        for cookie in [c for c in session.cookies if c.name == AFFINITY_COOKIE]:
            if self.affinity.cookie is None:
                self.affinity.cookie = cookie.value
            # Out of the session's jar: the session goes back to a pool shared by other
            # groups (and syncs) of this protocol, whose requests must not carry this
            # group's route.
            session.cookies.clear(cookie.domain, cookie.path, cookie.name)


class _GroupSubscribe(_AffineService, SubscribeToStreaming):
    pass


class _GroupUnsubscribe(_AffineService, Unsubscribe):
    pass


class _GroupStreamingEvents(_AffineService, GetStreamingEvents):
    """GetStreamingEvents that hands control back at every document the server sends
    (keep-alives too), so a stream can end when its group changed, not only when Exchange
    closes it; and that keeps the ids of the subscriptions an error names."""

    def __init__(self, *args: Any, until: Callable[[], bool], **kwargs: Any) -> None:
        self.until = until
        self.refused: list[str] = []
        super().__init__(*args, **kwargs)

    def _get_soap_messages(self, body: Any) -> Iterator[Any]:
        for message in super()._get_soap_messages(body):
            yield message
            if self.until():
                return   # exchangelib then closes the response and frees its connection

    def _get_element_container(self, message: Any, name: Any = None) -> Any:
        refused = message.find(f"{{{MNS}}}ErrorSubscriptionIds")
        if refused is not None:
            self.refused = [(e.text or "").strip() for e in refused]
        return super()._get_element_container(message, name)


class _Refused(Exception):
    """Exchange does not know these subscriptions (any more): expired, or lost."""

    def __init__(self, keys: list[int]) -> None:
        super().__init__(keys)
        self.keys = keys


# Streams open per protocol (one per endpoint and credentials, shared by every mailbox they
# reach): each holds one of its pooled connections for as long as it is open.
_open_streams: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_open_streams_lock = threading.Lock()


@contextlib.contextmanager
def _stream_slot(protocol: Any) -> Iterator[None]:
    """Grow the protocol's pool by one connection per open stream, so that the streams of
    several groups of one connection, and the subscribing beside them, never wait for each
    other (exchangelib would block for good on a pool that streams fill: notes §0, #1088)."""
    with _open_streams_lock:
        _open_streams[protocol] = _open_streams.get(protocol, 0) + 1
        protocol.max_connections = max(protocol.max_connections, _open_streams[protocol] + 1)
    try:
        yield
    finally:
        with _open_streams_lock:
            _open_streams[protocol] -= 1


@dataclasses.dataclass
class _Watch:
    """One target's streaming subscription."""

    target: WatchTarget
    mailbox: EwsConnection         # the target's own mailbox (the service account acting as it)
    subscription_id: str
    folder_ids: dict[str, str]     # folder id as Exchange reports it -> as the target gave it


class WatchGroup:
    """The streaming subscriptions of the mailboxes one EwsMailbox watches together."""

    def __init__(self, owner: EwsConnection) -> None:
        self.owner = owner
        self.affinity = _Affinity()
        self.watches: dict[int, _Watch] = {}

    def watch(self, targets: Sequence[WatchTarget], minutes: int,
              until: Callable[[], bool]) -> Iterator[WatchReport]:
        wanted = {t.key: t for t in targets}
        for key in [k for k, w in self.watches.items() if wanted.get(k) != w.target]:
            self._unsubscribe(self.watches.pop(key))   # left the group, or its folders changed
        failed = self._subscribe([t for t in targets if t.key not in self.watches])
        if failed:
            yield WatchReport(failed=failed)
        for _ in range(RESUBSCRIBE_ROUNDS):
            if not self.watches:
                return
            try:
                yield from self._stream(minutes, until)
                return
            except _Refused as refused:
                failed = self._subscribe([self.watches.pop(key).target for key in refused.keys])
                if failed:
                    yield WatchReport(failed=failed)
        raise MailboxError("Exchange keeps refusing new streaming subscriptions of these "
                           "mailboxes; watching them again later.")

    def _subscribe(self, targets: Sequence[WatchTarget]) -> dict[int, MailboxError]:
        """Subscribe each target, in address order (the first is the group's anchor); return
        those that failed on their own. A failure of the whole connection is raised."""
        failed: dict[int, MailboxError] = {}
        for target in sorted(targets, key=lambda t: t.access.mailbox):
            try:
                self.watches[target.key] = self._subscribe_one(target)
            except _CONNECTION_WIDE:
                raise
            except MailboxError as exc:
                failed[target.key] = exc
        return failed

    def _subscribe_one(self, target: WatchTarget) -> _Watch:
        mailbox = self.owner if target.access == self.owner.access \
            else type(self.owner)(target.access)
        # Events name folders by their ids: a well-known name given ("contacts") is looked up.
        folder_ids = {(mailbox._describe(f.id).get("FolderId") or f.id)
                      if f.id in DISTINGUISHED else f.id: f.id for f in target.folders}
        with mailbox._errors():
            subscription_id = _GroupSubscribe(account=mailbox.account, affinity=self.affinity).get(
                folders=[mailbox._folder(f) for f in target.folders],
                event_types=SubscribeToStreaming.EVENT_TYPES)
        if not self.affinity.anchor:
            self.affinity.anchor = target.access.mailbox
        return _Watch(target, mailbox, subscription_id, folder_ids)

    def _stream(self, minutes: int, until: Callable[[], bool]) -> Iterator[WatchReport]:
        by_subscription = {w.subscription_id: w for w in self.watches.values()}
        # Any mailbox of the group may open the stream: Exchange serves every subscription
        # the service account made to it. The first in address order, as the anchor is.
        streamer = min(self.watches.values(), key=lambda w: w.target.access.mailbox).mailbox
        service = _GroupStreamingEvents(account=streamer.account, affinity=self.affinity,
                                        until=until)
        with _stream_slot(streamer.account.protocol):
            try:
                for notification in service.call(subscription_ids=list(by_subscription),
                                                 connection_timeout=minutes):
                    report = _report(notification, by_subscription)
                    if report.changed:
                        yield report
            except exchange_errors.EWSError as exc:
                refused = [by_subscription[i].target.key for i in service.refused
                           if i in by_subscription]
                if not refused and isinstance(exc, _SUBSCRIPTIONS_GONE):
                    # Named none: e.g. a request routed to a server that holds none of them.
                    refused = [w.target.key for w in by_subscription.values()]
                if refused:
                    raise _Refused(refused) from exc
                raise translate_error(exc, streamer.access) from exc
            except Exception as exc:
                raise translate_error(exc, streamer.access) from exc

    def _unsubscribe(self, watch: _Watch) -> bool:
        """End a subscription (it would expire on its own); False if the server is out of
        reach."""
        try:
            _GroupUnsubscribe(account=watch.mailbox.account, affinity=self.affinity).get(
                subscription_id=watch.subscription_id)
        except (exchange_errors.TransportError, OSError):
            return False
        except Exception:
            pass   # already gone, or its mailbox with it: nothing left to end
        return True

    def close(self) -> None:
        for watch in self.watches.values():
            if not self._unsubscribe(watch):
                break   # the server is out of reach: the rest would wait in vain
        self.watches.clear()


def _report(notification: Any, by_subscription: dict[str, _Watch]) -> WatchReport:
    """The watched folders a notification names, as its target gave them."""
    watch = by_subscription.get(notification.subscription_id)
    if watch is None:
        return WatchReport()
    changed = set()
    for event in notification.events or []:
        # A move out of a watched folder changes it as much as a move in.
        for folder in (getattr(event, "parent_folder_id", None),
                       getattr(event, "old_parent_folder_id", None)):
            if folder is not None and folder.id in watch.folder_ids:
                changed.add(watch.folder_ids[folder.id])
    return WatchReport(changed={watch.target.key: changed} if changed else {})
