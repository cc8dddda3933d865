"""Subscribe (pull/streaming), GetEvents, GetStreamingEvents, Unsubscribe (notes §1.13, §3.4).

The event log and subscription bookkeeping live in `ewsim/notifications.py`; this module
parses requests, renders events and streams GetStreamingEvents responses.

GetStreamingEvents returns an `EventStream`: the server hands it the connection after
releasing the store lock. It writes one SOAP envelope per HTTP chunk: a ConnectionStatus OK
at once, a Notifications envelope whenever events arrive (it sleeps on `Store.changed`,
which every mutation notifies), an OK heartbeat when idle, and ConnectionStatus Closed when
ConnectionTimeout runs out, the subscriptions are gone, or the store is reset / the server
stops. Timeouts are counted in "minutes" of `EwsServer.notification_minute_seconds`
(60 unless a test shortens it via `POST /_control/settings`). Events are acknowledged only
once written to a client still there; the rest wait for the next connection.

Every notification request goes through `_keep_affinity` (the X-BackEndOverrideCookie,
`ewsim/affinity.py`).
"""

from __future__ import annotations

import copy
import select
import socket
import ssl
import struct
import time
from typing import Any

from lxml import etree

from .. import affinity, schema, soap
from ..context import Context, folder_id_elements
from ..notifications import EVENT_TYPES, Event, NotificationHub, Subscription, WatermarkError
from ..ns import M, T, bool_text, local, mq, parse_bool, sub, tq
from ..soap import EwsFault, MessageError, error, response_root, success
from ..timeutil import fmt_dt
from . import operation

EVENTS_PER_PAGE = 50          # per GetEvents call / per streamed Notification (MoreEvents)
HEARTBEAT_MINUTES = 0.5       # idle streams send ConnectionStatus OK this often
MAX_CONNECTION_TIMEOUT = 30   # GetStreamingEvents ConnectionTimeout: 1..30 minutes
MAX_PULL_TIMEOUT = 1440       # Subscribe Timeout: 1..1440 minutes (SubscriptionTimeoutType)
PEER_CHECK_SECONDS = 1.0      # an idle stream looks this often whether its client hung up

TEXTS = {
    "ErrorInvalidSubscription": "Subscription is invalid.",
    "ErrorSubscriptionNotFound": "The specified subscription was not found.",
    "ErrorSubscriptionAccessDenied": "The caller does not have access to this subscription.",
    "ErrorInvalidPullSubscriptionId": "The subscription is not a pull subscription.",
    "ErrorInvalidWatermark": "Watermark is invalid.",
    "ErrorMissedNotificationEvents": "Events were missed because the subscription fell too far "
                                     "behind; create a new subscription.",
    "ErrorInvalidSubscriptionRequest": "The subscription request is invalid.",
    "ErrorNewEventStreamConnectionOpened": "A new connection was opened for this subscription; "
                                           "this connection is closed.",
}


def _fail(code: str) -> MessageError:
    return MessageError(code, TEXTS.get(code))


def _minute(ctx: Context) -> float:
    return float(getattr(ctx.server, "notification_minute_seconds", 60.0))


def _owner(ctx: Context) -> str:
    principal = ctx.principal
    if principal.user is not None:
        return principal.user.address
    return f"app:{principal.app.client_id}" if principal.app is not None else ""


def _keep_affinity(ctx: Context, operation: str, sub_ids: list[str]) -> None:
    """Hand out the X-BackEndOverrideCookie as Exchange does, and record what the request
    kept of affinity (affinity.py)."""
    issued = None
    if affinity.prefers_affinity(ctx.headers) and affinity.request_cookie(ctx.headers) is None:
        issued = affinity.route(ctx.headers, ctx.mailbox)
        ctx.response_headers.append(affinity.set_cookie(issued, ctx.secure))
    if ctx.server is not None:
        ctx.server.affinity.record(operation, ctx.headers, ctx.mailbox, sub_ids, issued)


def _misrouted(ctx: Context, subscription: Subscription) -> bool:
    """Strict affinity: the request reached another mailbox server than the one holding it."""
    strict = ctx.server is not None and ctx.server.affinity.strict
    return strict and affinity.route(ctx.headers, ctx.mailbox) != subscription.backend


def _lookup(ctx: Context, sub_id: str, kind: str) -> Subscription:
    subscription = ctx.store.notifications.get(sub_id)
    if subscription is None:   # unknown, unsubscribed or expired
        raise _fail("ErrorInvalidSubscription")
    if _misrouted(ctx, subscription):   # that server has never heard of it
        raise _fail("ErrorSubscriptionNotFound")
    # A subscription belongs to whoever created it (Exchange: ErrorSubscriptionAccessDenied).
    if subscription.owner != _owner(ctx) or not ctx.may_open(subscription.mailbox):
        raise _fail("ErrorSubscriptionAccessDenied")
    if subscription.kind != kind:
        raise _fail("ErrorInvalidPullSubscriptionId" if kind == "pull"
                    else "ErrorInvalidSubscription")
    return subscription


def schema_view(payload: etree._Element) -> etree._Element:
    """The payload as messages.xsd expects it, for validation only.

    Exchange puts `Notification` (inside `m:Notifications`) and `SubscriptionId` (inside
    `m:ErrorSubscriptionIds`) in the messages namespace, although the published schema
    declares them in types; Microsoft's EWS Managed API and exchangelib read the m: form.
    """
    view = copy.deepcopy(payload)
    for parent, child in (("Notifications", "Notification"),
                          ("ErrorSubscriptionIds", "SubscriptionId")):
        for container in view.iter(mq(parent)):
            for el in container:
                if el.tag == mq(child):
                    el.tag = tq(child)
    return view


def event_element(parent: etree._Element, hub: NotificationHub, subscription: Subscription,
                  event: Event) -> etree._Element:
    el = sub(parent, T, event.kind)
    sub(el, T, "Watermark", hub.watermark(subscription, event.seq))
    sub(el, T, "TimeStamp", fmt_dt(event.timestamp))
    etree.SubElement(el, tq("ItemId"), Id=event.item_id, ChangeKey=event.changekey)
    etree.SubElement(el, tq("ParentFolderId"), Id=event.folder_id,
                     ChangeKey=event.folder_changekey)
    if event.old_item_id is not None:
        etree.SubElement(el, tq("OldItemId"), Id=event.old_item_id,
                         ChangeKey=event.old_changekey or "")
        etree.SubElement(el, tq("OldParentFolderId"), Id=event.old_folder_id or "",
                         ChangeKey=event.old_folder_changekey or "")
    return el


# --- Subscribe -------------------------------------------------------------------------------
@operation("Subscribe")
def subscribe(ctx: Context, req: etree._Element) -> etree._Element:
    request = next((c for c in req if isinstance(c.tag, str)), None)
    kind = {"PullSubscriptionRequest": "pull", "StreamingSubscriptionRequest": "streaming"}.get(
        local(request) if request is not None else "")
    if request is not None and local(request) == "PushSubscriptionRequest":
        raise EwsFault("ErrorInvalidOperation", "ewsim does not simulate push subscriptions.")
    if request is None or kind is None:
        raise EwsFault("ErrorSchemaValidation", "The request failed schema validation.")
    event_types = {(e.text or "").strip() for e in request.iter(tq("EventType"))}
    if not event_types or event_types - set(EVENT_TYPES):
        raise EwsFault("ErrorSchemaValidation",
                       f"The request failed schema validation: EventType {sorted(event_types)}.")
    timeout = 0
    if kind == "pull":
        try:
            timeout = int(request.findtext(tq("Timeout")) or "")
        except ValueError:
            timeout = 0
        if not 1 <= timeout <= MAX_PULL_TIMEOUT:
            raise EwsFault("ErrorSchemaValidation",
                           "The request failed schema validation: Timeout must be 1-1440.")
    _keep_affinity(ctx, "Subscribe", [])
    root, msgs = response_root("Subscribe")
    hub = ctx.store.notifications
    try:
        all_folders = parse_bool(request.get("SubscribeToAllFolders"))
        refs = folder_id_elements(request.find(tq("FolderIds")))
        if all_folders == bool(refs):   # exactly one of the two
            raise _fail("ErrorInvalidSubscriptionRequest")
        folder_ids: set[str] | None = None
        mailbox = ctx.mailbox
        if refs:
            folders = [ctx.folder(ref) for ref in refs]
            if len({f.mailbox for f in folders}) != 1:   # one mailbox per subscription
                raise _fail("ErrorInvalidSubscriptionRequest")
            mailbox = folders[0].mailbox
            folder_ids = {f.id for f in folders}
        start = None
        watermark = request.findtext(mq("Watermark")) or request.findtext(tq("Watermark"))
        if kind == "pull" and watermark:
            try:
                start = hub.resume_point(mailbox, watermark)
            except WatermarkError as exc:
                raise _fail("ErrorInvalidWatermark") from exc
        subscription = hub.subscribe(kind, mailbox, _owner(ctx), event_types, folder_ids,
                                     timeout, _minute(ctx), start)
        subscription.backend = affinity.route(ctx.headers, ctx.mailbox)
    except MessageError as exc:
        error(msgs, "Subscribe", exc.code, exc.message)
        return root
    msg = success(msgs, "Subscribe")
    sub(msg, M, "SubscriptionId", subscription.id)
    if kind == "pull":   # streaming subscriptions have no watermark in the response
        sub(msg, M, "Watermark", hub.watermark(subscription, subscription.cursor))
    return root


# --- GetEvents -------------------------------------------------------------------------------
@operation("GetEvents")
def get_events(ctx: Context, req: etree._Element) -> etree._Element:
    sub_id = (req.findtext(mq("SubscriptionId")) or "").strip()
    watermark = (req.findtext(mq("Watermark")) or "").strip()
    _keep_affinity(ctx, "GetEvents", [sub_id])
    root, msgs = response_root("GetEvents")
    hub = ctx.store.notifications
    try:
        subscription = _lookup(ctx, sub_id, "pull")
        # Every GetEvents restarts the pull subscription's Timeout.
        hub.touch(subscription, _minute(ctx))
        try:
            wm_mailbox, wm_sub, seq = hub.parse_watermark(watermark)
        except WatermarkError as exc:
            raise _fail("ErrorInvalidWatermark") from exc
        if wm_sub != subscription.id or wm_mailbox != subscription.mailbox:
            raise _fail("ErrorInvalidWatermark")
        if subscription.missed:   # the log cap dropped events it had not fetched yet
            raise _fail("ErrorMissedNotificationEvents")
        if hub.is_stale(subscription, seq):
            raise _fail("ErrorInvalidWatermark")
        # Passing a watermark acknowledges every event up to it: they may be forgotten.
        hub.acknowledge(subscription, seq)
        events, more, last = hub.pending(subscription, seq, EVENTS_PER_PAGE)
    except MessageError as exc:
        error(msgs, "GetEvents", exc.code, exc.message)
        return root
    msg = success(msgs, "GetEvents")
    notification = sub(msg, M, "Notification")
    sub(notification, T, "SubscriptionId", subscription.id)
    sub(notification, T, "PreviousWatermark", watermark)
    sub(notification, T, "MoreEvents", bool_text(more))
    for event in events:
        event_element(notification, hub, subscription, event)
    if not events:
        status = sub(notification, T, "StatusEvent")
        sub(status, T, "Watermark", hub.watermark(subscription, last))
    return root


# --- Unsubscribe -----------------------------------------------------------------------------
@operation("Unsubscribe")
def unsubscribe(ctx: Context, req: etree._Element) -> etree._Element:
    sub_id = (req.findtext(mq("SubscriptionId")) or "").strip()
    _keep_affinity(ctx, "Unsubscribe", [sub_id])
    root, msgs = response_root("Unsubscribe")
    hub = ctx.store.notifications
    subscription = hub.get(sub_id)
    if subscription is None:
        exc = _fail("ErrorSubscriptionNotFound")
        error(msgs, "Unsubscribe", exc.code, exc.message)
        return root
    try:
        _lookup(ctx, sub_id, subscription.kind)
    except MessageError as exc:
        error(msgs, "Unsubscribe", exc.code, exc.message)
        return root
    hub.remove(sub_id)   # an open stream on it ends with ConnectionStatus Closed
    success(msgs, "Unsubscribe")
    return root


# --- GetStreamingEvents ----------------------------------------------------------------------
@operation("GetStreamingEvents")
def get_streaming_events(ctx: Context, req: etree._Element) -> EventStream:
    container = req.find(mq("SubscriptionIds"))
    sub_ids = [(c.text or "").strip() for c in (container if container is not None else [])
               if isinstance(c.tag, str) and local(c) == "SubscriptionId"]
    # exchangelib sends m:ConnectionTimeout; the docs list t: — accept both (notes §3.4).
    text = req.findtext(mq("ConnectionTimeout")) or req.findtext(tq("ConnectionTimeout")) or ""
    try:
        minutes = int(text)
    except ValueError:
        minutes = 0
    if not sub_ids or not 1 <= minutes <= MAX_CONNECTION_TIMEOUT:
        raise EwsFault("ErrorSchemaValidation", "The request failed schema validation: "
                       "ConnectionTimeout must be 1-30 minutes.")
    _keep_affinity(ctx, "GetStreamingEvents", sub_ids)
    hub = ctx.store.notifications
    subscriptions: list[Subscription] = []
    bad: list[str] = []
    first: MessageError | None = None
    for sub_id in sub_ids:
        try:
            subscriptions.append(_lookup(ctx, sub_id, "streaming"))
        except MessageError as exc:
            bad.append(sub_id)
            first = first or exc
    if first is not None:
        return EventStream(hub, [], 0.0, 0.0, error=_stream_error(first, bad),
                           headers=ctx.response_headers)
    minute = _minute(ctx)
    attached = [(s, hub.attach(s)) for s in subscriptions]
    return EventStream(hub, attached, minutes * minute, minute, headers=ctx.response_headers)


def _stream_error(exc: MessageError, sub_ids: list[str]) -> etree._Element:
    root, msgs = response_root("GetStreamingEvents")
    msg = error(msgs, "GetStreamingEvents", exc.code, exc.message)
    ids_el = sub(msg, M, "ErrorSubscriptionIds")
    for sub_id in sub_ids:
        sub(ids_el, M, "SubscriptionId", sub_id)   # m:, as Exchange sends (see schema_view)
    return root


def _status(value: str) -> etree._Element:
    root, msgs = response_root("GetStreamingEvents")
    msg = success(msgs, "GetStreamingEvents")
    sub(msg, M, "ConnectionStatus", value)
    return root


class ClientGone(ConnectionError):
    """The client hung up: nothing written on this stream from now on can arrive."""


def peer_closed(connection: socket.socket) -> bool:
    """Whether the client closed the stream's connection. A streaming client sends nothing
    after its request, so a readable socket means end of file or a reset (over TLS, the
    client's close_notify: whatever it sent, it is leaving)."""
    try:
        poller = select.poll()   # not select(): it fails on descriptors past 1023
        poller.register(connection, select.POLLIN)
        ready = poller.poll(0)
    except (OSError, ValueError):   # closed under us
        return True
    if not ready:
        return False
    if isinstance(connection, ssl.SSLSocket):
        return True
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class EventStream:
    """A GetStreamingEvents response: chunked SOAP envelopes written as events happen.

    Events count as delivered only once written: before writing them the stream checks that
    the client is still there, and it acknowledges them after the write went through. A
    client that hung up (or a write that failed) leaves them queued on the subscription
    for its next GetStreamingEvents, as Exchange keeps them.
    """

    def __init__(self, hub: NotificationHub, subscriptions: list[tuple[Subscription, int]],
                 seconds: float, minute: float, error: etree._Element | None = None,
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.hub = hub
        self.subscriptions = subscriptions    # (subscription, stream token from attach())
        self.seconds = seconds
        self.minute = minute
        self.error = error
        self.headers = list(headers or [])    # e.g. the affinity cookie
        self.taken: list[str] = []

    def serve(self, handler: Any, request: bytes) -> None:
        """Write the whole response on `handler` (a BaseHTTPRequestHandler), lock released."""
        ews = handler.server.ews
        connection = handler.connection
        sent: list[bytes] = []
        fault, handler.stream_fault = handler.stream_fault, None

        def write(payload: etree._Element, events: bool = False) -> None:
            if ews.validate:
                errors = schema.validate_payload(schema_view(payload))
                if errors:
                    ews.validation_errors.append({"operation": "GetStreamingEvents",
                                                  "errors": errors,
                                                  "response": etree.tostring(payload)[:4000]})
            data = soap.serialize(soap.envelope(payload))
            chunk = b"%X\r\n%s\r\n" % (len(data), data)
            if peer_closed(connection):
                # Written into a closed connection, it would look delivered (and the
                # client's reset would surface as the next request's read failing).
                raise ClientGone("the client closed the stream")
            if events and fault is not None:
                _break(handler, chunk)
            handler.wfile.write(chunk)
            handler.wfile.flush()
            sent.append(data)

        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "text/xml; charset=utf-8")
            handler.send_header("Transfer-Encoding", "chunked")
            for key, value in self.headers:
                handler.send_header(key, value)
            handler.end_headers()
            if self.error is not None:
                write(self.error)
            else:
                self._loop(write, connection)
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:
            # The client went away (e.g. max_notifications_returned reached, or a listener
            # reconnecting): what it did not get stays queued.
            handler.close_connection = True
        finally:
            with self.hub.store.lock:
                for subscription, token in self.subscriptions:
                    self.hub.detach(subscription, token, self.minute)
            ews.capture("GetStreamingEvents", request, b"".join(sent))

    def _loop(self, write: Any, connection: socket.socket) -> None:
        cond = self.hub.store.changed
        deadline = time.monotonic() + self.seconds
        beat = HEARTBEAT_MINUTES * self.minute
        write(_status("OK"))   # tells the client the stream is established
        next_beat = time.monotonic() + beat
        while True:
            with cond:
                batch, state = self._collect()
                while not batch and state == "ok":
                    now = time.monotonic()
                    if now >= deadline or now >= next_beat:
                        break
                    # Wake now and then to notice a client that hung up while all is quiet.
                    cond.wait(min(deadline, next_beat, now + PEER_CHECK_SECONDS) - now)
                    if peer_closed(connection):
                        raise ClientGone("the client closed the stream")
                    batch, state = self._collect()
            now = time.monotonic()
            if batch:
                write(self._notifications(batch), events=True)
                with cond:   # written: now they are delivered
                    for subscription, _events, upto in batch:
                        self.hub.acknowledge(subscription, upto)
                next_beat = now + beat
                if now < deadline:
                    continue
            if state != "ok" or now >= deadline:
                break
            write(_status("OK"))   # heartbeat
            next_beat = now + beat
        if state == "taken":
            exc = _fail("ErrorNewEventStreamConnectionOpened")
            write(_stream_error(exc, self.taken))
        else:
            write(_status("Closed"))

    def _collect(self) -> tuple[list[tuple[Subscription, list[Event], int]], str]:
        """Under the store lock: events for each live subscription (with the seq to
        acknowledge once they are written), and the stream's state."""
        hub = self.hub
        if hub.closed:
            return [], "closed"
        live = []
        for subscription, token in self.subscriptions:
            if hub.subscriptions.get(subscription.id) is not subscription:
                continue   # unsubscribed
            if subscription.stream_token != token:
                self.taken.append(subscription.id)
            else:
                live.append(subscription)
        if self.taken:
            return [], "taken"
        if not live:
            return [], "closed"
        batch = []
        for subscription in live:
            events, more, last = hub.pending(subscription, subscription.cursor, EVENTS_PER_PAGE)
            if events:
                batch.append((subscription, events, events[-1].seq if more else last))
            else:
                # Only events it filters out: skip them now, there is nothing to lose.
                hub.acknowledge(subscription, last)
        return batch, "ok"

    def _notifications(self, batch: list[tuple[Subscription, list[Event], int]]
                       ) -> etree._Element:
        root, msgs = response_root("GetStreamingEvents")
        msg = success(msgs, "GetStreamingEvents")
        container = sub(msg, M, "Notifications")
        for subscription, events, _upto in batch:
            # m:Notification, as Exchange sends it (see schema_view).
            notification = sub(container, M, "Notification")
            sub(notification, T, "SubscriptionId", subscription.id)
            for event in events:
                event_element(notification, self.hub, subscription, event)
        return root


def _break(handler: Any, chunk: bytes) -> None:
    """The stream_reset fault: half the chunk goes out, then the connection is reset."""
    handler.wfile.write(chunk[:len(chunk) // 2])
    handler.wfile.flush()
    # SO_LINGER 0 makes close() send RST instead of FIN.
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    raise ConnectionResetError("stream_reset fault")
