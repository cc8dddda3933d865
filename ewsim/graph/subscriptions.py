"""`/subscriptions`: Graph change-notification subscriptions on Outlook messages, events, contacts.

POST validates like Graph: the notification URL (and the lifecycle URL) is called with
`?validationToken=…` and must answer 200 with the token as its text/plain body within
10 seconds, else 400. The handshake runs without the store lock (it may take seconds).
Delivery is `notifier.py`'s job.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from ..store import Principal
from .context import GraphRequest, GraphResponse, check_id
from .errors import GraphError, bad_request
from .notifier import Notifier, Subscription, folder_kind, now

MAX_MINUTES = 10080             # Outlook messages, events, contacts: 7 days
MAX_CLIENT_STATE = 128
VALIDATION_TIMEOUT_S = 10.0
CHANGE_TYPES = {"created", "updated", "deleted"}
TLS_VERSIONS = {"v1_0", "v1_1", "v1_2", "v1_3"}
WELL_KNOWN = {"messages": {"inbox", "sentitems", "deleteditems", "drafts", "junkemail",
                           "outbox", "msgfolderroot"},
              "contacts": {"contacts"}, "events": {"calendar"}}
# me/… or users/{id}/… then: messages | mailFolders/{f}/messages | contacts |
# contactFolders/{f}/contacts | events | calendar/events | calendars/{f}/events.
# A folder is written `/{id}` or `('{id}')`.
_F = r"(?:\('(?P<{0}>[^']+)'\)|/(?P<{1}>[^/('\s]+))"
RESOURCE = re.compile(
    r"^/?(?:me|users(?:\('(?P<uq>[^']+)'\)|/(?P<user>[^/]+)))/"
    r"(?:(?P<messages>messages)|mailfolders" + _F.format("mfq", "mf") + r"/messages"
    r"|(?P<contacts>contacts)|contactfolders" + _F.format("cfq", "cf") + r"/contacts"
    r"|(?P<events>events)|(?P<calendar>calendar)/events|calendars" + _F.format("caq", "ca")
    + r"/events)/?$", re.IGNORECASE)


def parse_resource(text: str) -> tuple[str | None, str, str | None]:
    """`resource` -> (user segment or None for me, kind, folder reference or None)."""
    match = RESOURCE.match(text.strip())
    if match is None:
        raise bad_request(f"Resource '{text}' is not supported for change notifications.",
                          "ExtensionError")
    g = match.groupdict()
    user = g["uq"] or g["user"]
    if g["messages"]:
        return user, "messages", None
    if g["mfq"] or g["mf"]:
        return user, "messages", g["mfq"] or g["mf"]
    if g["contacts"]:
        return user, "contacts", None
    if g["cfq"] or g["cf"]:
        return user, "contacts", g["cfq"] or g["cf"]
    if g["events"]:
        return user, "events", None
    if g["calendar"]:
        return user, "events", "calendar"
    return user, "events", g["caq"] or g["ca"]


def _folder_id(server: Any, mailbox: str, kind: str, ref: str | None) -> str | None:
    if ref is None:
        return None
    store = server.store
    with store.lock:
        if ref.lower() in WELL_KNOWN[kind]:
            folder = store.folder_by_distinguished(mailbox, ref.lower())
        else:
            check_id(ref)           # 400 ErrorInvalidIdMalformed, as for the folder itself
            folder = store.folders.get(ref)
        if folder is None or folder.mailbox != mailbox or folder_kind(folder.folder_class) \
                != kind:
            raise GraphError(404, "ErrorItemNotFound")
        return folder.id


def _expiration(data: dict[str, Any]) -> dt.datetime:
    raw = data.get("expirationDateTime")
    if not isinstance(raw, str) or not raw:
        raise bad_request("expirationDateTime is a required property.", "InvalidRequest")
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request(f"Cannot convert '{raw}' to a date.", "InvalidRequest") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    stamp = now()
    if value <= stamp:
        raise bad_request("Subscription expiration can only be in the future.",
                          "InvalidRequest")
    if value > stamp + dt.timedelta(minutes=MAX_MINUTES, seconds=30):
        raise bad_request(f"Subscription expiration can only be {MAX_MINUTES} minutes in "
                          "the future.", "InvalidRequest")
    return value


def validate_url(url: str) -> None:
    """Graph's handshake: POST url?validationToken=… must echo the token, 200, within 10 s."""
    # Worded as Graph's (spaces and colons: the endpoint must URL-decode the query).
    token = ("Validation: Testing client application reachability for subscription "
             f"Request-Id: {uuid.uuid4()}")
    split = urllib.parse.urlsplit(url)
    if split.scheme not in ("http", "https") or not split.netloc:
        raise bad_request("Invalid notification url.", "InvalidRequest")
    query = (split.query + "&" if split.query else "") + urllib.parse.urlencode(
        {"validationToken": token})
    target = urllib.parse.urlunsplit(split._replace(query=query))
    request = urllib.request.Request(target, data=b"", method="POST",
                                     headers={"Content-Type": "text/plain; charset=utf-8"})
    failed = ("Subscription validation request failed. Notification endpoint must respond "
              "with 200 OK to validation request.")
    try:
        with urllib.request.urlopen(request, timeout=VALIDATION_TIMEOUT_S) as response:
            status, body = response.status, response.read(4096)
            content_type = response.headers.get("Content-Type", "")
    except (urllib.error.HTTPError, OSError, ValueError) as exc:
        raise bad_request(failed, "InvalidRequest") from exc
    if status != 200:
        raise bad_request(failed, "InvalidRequest")
    if body.decode("utf-8", "replace") != token or not content_type.startswith("text/plain"):
        raise bad_request("Subscription validation request failed. Response must exactly "
                          "match validationToken query parameter.", "InvalidRequest")


def _owner(principal: Principal) -> tuple[str, str, str]:
    """(owner key, applicationId, tenantId) of the caller."""
    if principal.app is not None:
        return f"app:{principal.app.client_id}", principal.app.client_id, principal.app.tenant
    address = principal.address or ""
    return f"user:{address}", "ewsim-delegated", "common"


def _entity(base_url: str, sub: Subscription, status: int = 200) -> GraphResponse:
    return GraphResponse(status, {"@odata.context": f"{base_url}/$metadata#subscriptions/"
                                                    "$entity", **sub.json()})


def handle(server: Any, principal: Principal, request: GraphRequest, base_url: str,
           mailbox_of: Any) -> GraphResponse:
    """Serve /subscriptions and /subscriptions/{id}; `mailbox_of(segment)` checks access."""
    notifier: Notifier = server.graph_notifier
    parts = [p for p in request.path.strip("/").split("/") if p]
    owner, application_id, tenant = _owner(principal)
    if principal.app is not None and not principal.app.admin_consent:
        raise GraphError(403, "ErrorAccessDenied")
    if len(parts) == 1:
        if request.method == "GET":
            values = [s.json() for s in notifier.listed() if s.owner == owner]
            return GraphResponse(200, {"@odata.context": f"{base_url}/$metadata#subscriptions",
                                       "value": values})
        if request.method == "POST":
            return _create(server, notifier, request.json(), base_url, mailbox_of,
                           request, owner, application_id, tenant)
        raise GraphError(405, "Request_BadRequest",
                         f"The HTTP method '{request.method}' is not allowed for this resource.")
    if len(parts) != 2:
        raise bad_request(f"Resource not found for the segment '{parts[-1]}'.")
    sub = notifier.get(parts[1])
    if sub is None or sub.owner != owner:
        raise GraphError(404, "ResourceNotFound", "The object was not found.")
    if request.method == "GET":
        return _entity(base_url, sub)
    if request.method == "DELETE":
        notifier.remove(sub.id)
        return GraphResponse(204)
    if request.method == "PATCH":
        data = request.json()
        unknown = set(data) - {"expirationDateTime", "notificationUrl"}
        if unknown:
            raise bad_request(f"Property '{sorted(unknown)[0]}' cannot be updated.",
                              "InvalidRequest")
        expiration = _expiration(data) if "expirationDateTime" in data else None
        if "notificationUrl" in data:
            validate_url(str(data["notificationUrl"]))
        with notifier.lock:
            if expiration is not None:
                sub.expiration = expiration
            if "notificationUrl" in data:
                sub.notification_url = str(data["notificationUrl"])
        return _entity(base_url, sub)
    raise GraphError(405, "Request_BadRequest",
                     f"The HTTP method '{request.method}' is not allowed for this resource.")


def _create(server: Any, notifier: Notifier, data: dict[str, Any], base_url: str,
            mailbox_of: Any, request: GraphRequest, owner: str, application_id: str,
            tenant: str) -> GraphResponse:
    for name in ("changeType", "notificationUrl", "resource"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise bad_request(f"{name} is a required property.", "InvalidRequest")
    changes = {c.strip() for c in data["changeType"].split(",") if c.strip()}
    if not changes or not changes <= CHANGE_TYPES:
        raise bad_request(f"Invalid changeType '{data['changeType']}'.", "InvalidRequest")
    client_state = data.get("clientState")
    if client_state is not None and (not isinstance(client_state, str)
                                     or len(client_state) > MAX_CLIENT_STATE):
        raise bad_request(f"clientState is limited to {MAX_CLIENT_STATE} characters.",
                          "InvalidRequest")
    tls = data.get("latestSupportedTlsVersion") or "v1_2"
    if tls not in TLS_VERSIONS:
        raise bad_request(f"Invalid latestSupportedTlsVersion '{tls}'.", "InvalidRequest")
    lifecycle_url = data.get("lifecycleNotificationUrl") or None
    expiration = _expiration(data)
    user, kind, ref = parse_resource(data["resource"])
    mailbox = mailbox_of(user)                    # 403/404 as for any request on it
    folder_id = _folder_id(server, mailbox, kind, ref)
    validate_url(data["notificationUrl"])
    if lifecycle_url:
        validate_url(str(lifecycle_url))
    sub = Subscription(id=str(uuid.uuid4()), mailbox=mailbox, kind=kind, folder_id=folder_id,
                       resource=data["resource"], change_types=changes,
                       notification_url=data["notificationUrl"], expiration=expiration,
                       owner=owner, application_id=application_id, tenant_id=tenant,
                       client_state=client_state, lifecycle_url=lifecycle_url,
                       tls_version=tls, change_type_text=",".join(
                           c.strip() for c in data["changeType"].split(",") if c.strip()),
                       immutable_ids=request.prefer.get("idtype", "").lower()
                       == "immutableid")
    notifier.add(sub)
    with notifier.lock:
        notifier.counters["created"] += 1
    return _entity(base_url, sub, 201)
