"""The API's routes under /api/v2/, with Raynet's verbs: PUT on a collection creates, POST on
a record edits, DELETE deletes; external ids, tags, person–company relationships, file
uploads and attachments, webhooks. Each handler gets an `ApiCall` and returns status + body;
record changes are noted on the call for the webhook deliveries."""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

from . import listing, participants, spec
from .entities import (
    check_required,
    last_modified,
    merge,
    present,
    stored_fields,
)
from .store import (
    ACTIVITIES,
    ENTITIES,
    EXT_IDS_PER_RECORD,
    Instance,
    Record,
    Store,
    User,
    Webhook,
)

WEBHOOK_EVENTS = ("record.created", "record.updated", "record.deleted")


class ApiError(Exception):
    def __init__(self, status: int, message: str, translated: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"success": False, "message": message,
                     **({"translatedMessage": translated} if translated else {})}


@dataclass
class ApiCall:
    store: Store
    instance: Instance
    user: User
    now: datetime
    query: dict[str, str]
    body: bytes
    content_type: str
    events: list[tuple[str, str, int, list[str]]] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError as exc:
            raise ApiError(400, "Malformed JSON") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "Malformed JSON: an object is expected")
        return data

    def note(self, event: str, record: Record) -> None:
        self.events.append((event, record.entity, record.id, list(record.ext_ids)))


# None: an answer without a body, where the specification declares no content.
Answer = tuple[int, dict[str, Any] | None]
ROUTES: list[tuple[str, re.Pattern[str], Callable[..., Answer]]] = []
ENTITY = "(?P<entity>" + "|".join(ENTITIES) + ")"


def route(method: str, pattern: str) -> Callable[[Callable[..., Answer]], Callable[..., Answer]]:
    def register(handler: Callable[..., Answer]) -> Callable[..., Answer]:
        ROUTES.append((method, re.compile(f"^{pattern}$"), handler))
        return handler
    return register


def dispatch(method: str, path: str, call: ApiCall) -> Answer:
    for verb, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match and verb == method:
            return handler(call, **match.groupdict())
    raise ApiError(404, f"No API method {method} {path}")


def _record(call: ApiCall, entity: str, record_id: str | int) -> Record:
    record = call.instance.records[entity].get(int(record_id))
    if record is None:
        raise ApiError(404, f"EntityNotFoundException: {entity} {record_id}",
                       "Záznam nebyl nalezen.")
    return record


def _iso(call: ApiCall) -> bool:
    return call.query.get("dateFormat") == "ISO8601"


@route("GET", f"/{ENTITY}/")
def list_records(call: ApiCall, entity: str) -> Answer:
    view = call.query.get("view")
    # Filters look at the whole record, whatever the view shows of it.
    rows = []
    for record in call.instance.records[entity].values():
        row = present(call.instance, record)
        row["rowInfo.lastModifiedAt"] = last_modified(record)
        rows.append(row)
    try:
        total, page = listing.select(call.instance, entity, rows, call.query)
    except listing.BadListRequest as exc:
        raise ApiError(400, str(exc)) from exc
    records = call.instance.records[entity]
    if view == "rowInfo":
        page = [present(call.instance, records[row["id"]], view) for row in page]
    else:
        for row in page:
            row.pop("rowInfo.lastModifiedAt")
    return 200, {"success": True, "totalCount": total, "data": page}


def _writable(body: dict[str, Any]) -> dict[str, Any]:
    """What a create or an edit writes: an activity's `recurrence` is shown by Raynet but
    taken by no insert or edit DTO, so it is not written through the API (the control API
    seeds it, as a series made in Raynet's web app)."""
    return {name: value for name, value in body.items() if name != "recurrence"}


@route("PUT", f"/{ENTITY}/")
def create(call: ApiCall, entity: str) -> Answer:
    body = _writable(call.json())
    try:
        check_required(entity, body)
        fields = stored_fields(call.instance, entity, body)
    except ValueError as exc:     # InvalidInput and DateError among them
        raise ApiError(400, str(exc)) from exc
    ext_ids = [str(e) for e in body.get("extIds") or ()]
    for ext_id in ext_ids:
        if call.instance.by_ext_id(entity, ext_id):
            raise ApiError(400, f"DuplicateExtIdException: {ext_id}")
    if len(ext_ids) > EXT_IDS_PER_RECORD:
        raise ApiError(400, f"At most {EXT_IDS_PER_RECORD} external ids per record")
    if entity != "activityCategory":
        fields.setdefault("owner", call.user.person_id)
    record = call.store.create(call.instance, entity, fields, call.now, call.user.email)
    record.ext_ids = ext_ids
    record.tags = [str(t) for t in body.get("tags") or ()]
    if entity == "person" and isinstance(body.get("relationship"), dict):
        _add_relationship(call, record, body["relationship"])
    call.note("record.created", record)
    return 201, {"success": True, "data": {"id": record.id}}


@route("GET", f"/{ENTITY}/(?P<record_id>[0-9]+)/")
def detail(call: ApiCall, entity: str, record_id: str) -> Answer:
    record = _record(call, entity, record_id)
    return 200, {"success": True, "data": present(call.instance, record)}


@route("POST", f"/{ENTITY}/(?P<record_id>[0-9]+)/")
def edit(call: ApiCall, entity: str, record_id: str) -> Answer:
    record = _record(call, entity, record_id)
    body = _writable(call.json())
    try:
        if entity in ACTIVITIES and "participants" in body:
            participants.edit(call.instance, record, body.pop("participants"),
                              call.store.next_id)
        merge(record, stored_fields(call.instance, entity, body))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc
    if "tags" in body:
        record.tags = [str(t) for t in body["tags"] or ()]
    record.touch(call.now, call.user.email)
    call.note("record.updated", record)
    return 200, {"success": True} if spec.edit_answers_with_body(entity) else None


@route("DELETE", f"/{ENTITY}/(?P<record_id>[0-9]+)/")
def delete(call: ApiCall, entity: str, record_id: str) -> Answer:
    record = _record(call, entity, record_id)
    del call.instance.records[entity][record.id]
    call.note("record.deleted", record)
    return 200, None


@route("PUT", f"/{ENTITY}/(?P<record_id>[0-9]+)/extId/")
def add_ext_id(call: ApiCall, entity: str, record_id: str) -> Answer:
    record = _record(call, entity, record_id)
    ext_id = str(call.json().get("extId") or "")
    if not ext_id:
        raise ApiError(400, "Missing required attribute(s): extId")
    holder = call.instance.by_ext_id(entity, ext_id)
    if holder is not None and holder is not record:
        raise ApiError(400, f"DuplicateExtIdException: {ext_id}")
    if holder is None:
        if len(record.ext_ids) >= EXT_IDS_PER_RECORD:
            raise ApiError(400, f"At most {EXT_IDS_PER_RECORD} external ids per record")
        record.ext_ids.append(ext_id)
        record.touch(call.now, call.user.email)
        call.note("record.updated", record)
    return 200, {"success": True}


@route("DELETE", f"/{ENTITY}/(?P<record_id>[0-9]+)/extId/(?P<ext_id>[^/]+)/?")
def remove_ext_id(call: ApiCall, entity: str, record_id: str, ext_id: str) -> Answer:
    record = _record(call, entity, record_id)
    if ext_id in record.ext_ids:
        record.ext_ids.remove(ext_id)
        record.touch(call.now, call.user.email)
        call.note("record.updated", record)
    return 200, {"success": True}


@route("GET", f"/{ENTITY}/ext/(?P<ext_id>[^/]+)/")
def detail_by_ext_id(call: ApiCall, entity: str, ext_id: str) -> Answer:
    ext_id = urllib.parse.unquote(ext_id)     # an id holding "/" comes percent-encoded
    record = call.instance.by_ext_id(entity, ext_id)
    if record is None:
        raise ApiError(404, f"EntityNotFoundException: {entity} ext {ext_id}",
                       "Záznam nebyl nalezen.")
    return 200, {"success": True, "data": present(call.instance, record)}


def _tag(call: ApiCall, entity: str, record_id: str, adding: bool) -> Answer:
    record = _record(call, entity, record_id)
    tag = str(call.json().get("tag") or "")
    if not tag:
        raise ApiError(400, "Missing required attribute(s): tag")
    if adding and tag not in record.tags:
        record.tags.append(tag)
    elif not adding and tag in record.tags:
        record.tags.remove(tag)
    record.touch(call.now, call.user.email)
    call.note("record.updated", record)
    return (201 if adding else 200), None


@route("PUT", "/(?P<entity>person|company)/(?P<record_id>[0-9]+)/tag/")
def add_tag(call: ApiCall, entity: str, record_id: str) -> Answer:
    return _tag(call, entity, record_id, adding=True)


@route("DELETE", "/(?P<entity>person|company)/(?P<record_id>[0-9]+)/tag/")
def remove_tag(call: ApiCall, entity: str, record_id: str) -> Answer:
    return _tag(call, entity, record_id, adding=False)


def _add_relationship(call: ApiCall, person: Record, body: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(body.get("company"), int) or not body.get("type"):
        raise ApiError(400, "Missing required attribute(s): company, type")
    _record(call, "company", body["company"])
    relationship = {"id": call.store.next_id(), "company": body["company"],
                    "type": body["type"], "notice": body.get("notice"),
                    "primary": not person.relationships}
    person.relationships.append(relationship)
    return relationship


@route("PUT", "/person/(?P<record_id>[0-9]+)/relationship/")
def add_relationship(call: ApiCall, record_id: str) -> Answer:
    person = _record(call, "person", record_id)
    relationship = _add_relationship(call, person, call.json())
    person.touch(call.now, call.user.email)
    call.note("record.updated", person)
    return 201, {"success": True, "data": {"id": relationship["id"]}}


def _relationship(person: Record, relationship_id: str) -> dict[str, Any]:
    for relationship in person.relationships:
        if relationship["id"] == int(relationship_id):
            return relationship
    raise ApiError(404, f"EntityNotFoundException: relationship {relationship_id}")


@route("POST", "/person/(?P<record_id>[0-9]+)/relationship/(?P<relationship_id>[0-9]+)/")
def edit_relationship(call: ApiCall, record_id: str, relationship_id: str) -> Answer:
    person = _record(call, "person", record_id)
    relationship = _relationship(person, relationship_id)
    body = call.json()
    if "company" in body:
        _record(call, "company", body["company"])
    relationship.update({k: body[k] for k in ("company", "type", "notice") if k in body})
    person.touch(call.now, call.user.email)
    call.note("record.updated", person)
    return 200, None


@route("DELETE", "/person/(?P<record_id>[0-9]+)/relationship/(?P<relationship_id>[0-9]+)/")
def remove_relationship(call: ApiCall, record_id: str, relationship_id: str) -> Answer:
    person = _record(call, "person", record_id)
    relationship = _relationship(person, relationship_id)
    person.relationships.remove(relationship)
    if relationship["primary"] and person.relationships:
        person.relationships[0]["primary"] = True     # a person keeps a primary company
    person.touch(call.now, call.user.email)
    call.note("record.updated", person)
    return 200, None


@route("POST", "/fileUpload/?")
def upload(call: ApiCall) -> Answer:
    message = BytesParser(policy=default_policy).parsebytes(
        f"Content-Type: {call.content_type}\r\n\r\n".encode() + call.body)
    part = next((p for p in message.iter_parts()
                 if p.get_param("name", header="content-disposition") == "file"), None)
    if part is None:
        raise ApiError(400, "Missing multipart part 'file'")
    content = part.get_payload(decode=True) or b""
    upload_id = uuid.uuid4().hex
    details = {"uuid": upload_id, "fileName": part.get_filename() or "file",
               "contentType": part.get_content_type(), "fileSize": len(content)}
    call.instance.uploads[upload_id] = {**details, "content": content}
    return 200, details


@route("PUT", f"/attachment/{ENTITY}/(?P<record_id>[0-9]+)/")
def attach(call: ApiCall, entity: str, record_id: str) -> Answer:
    record = _record(call, entity, record_id)
    body = call.json()
    attachment: dict[str, Any] = {"id": call.store.next_id()}
    if body.get("uuid"):
        upload_details = call.instance.uploads.get(str(body["uuid"]))
        if upload_details is None:
            raise ApiError(400, f"Unknown upload {body['uuid']}")
        # As a detail lists attachments (the specification's examples): the file's name,
        # type and size, or a link.
        attachment.update(link=None, linkName=None, folder=None, folderId=None, file={
            "id": call.store.next_id(),
            "fileName": body.get("fileName") or upload_details["fileName"],
            "contentType": body.get("contentType") or upload_details["contentType"],
            "size": upload_details["fileSize"]})
    elif body.get("link"):
        attachment.update(link=body["link"], linkName=body.get("linkName"), file=None,
                          folder=None, folderId=None)
    else:
        raise ApiError(400, "An attachment needs an uploaded file (uuid) or a link")
    record.attachments.append(attachment)
    record.touch(call.now, call.user.email)
    call.note("record.updated", record)
    return 201, {"success": True, "data": attachment["id"]}


@route("GET", "/userAccount/")
def list_user_accounts(call: ApiCall) -> Answer:
    """The instance's users, each with the person it is (owners are persons); `username`
    filters by the sign-in e-mail, which Raynet compares without regard to case."""
    wanted = call.query.get("username", "").lower()
    users = [user for user in call.instance.users.values()
             if not wanted or user.email.lower() == wanted]
    data = [{"id": user.person_id, "username": user.email, "userRole": "ADMIN",
             "person": {"id": user.person_id, "fullName": user.full_name}}
            for user in users]
    return 200, {"success": True, "totalCount": len(data), "data": data}


@route("GET", "/webhook/")
def list_webhooks(call: ApiCall) -> Answer:
    hooks = [{"webhookId": h.uuid, "url": h.url, "secretToken": h.secret_token,
              "eventsFilter": list(h.events)} for h in call.instance.webhooks.values()]
    return 200, {"success": True, "data": {"technicalContacts": [], "webhooks": hooks}}


@route("PUT", "/webhook/")
def add_webhook(call: ApiCall) -> Answer:
    body = call.json()
    events = body.get("events") or []
    if not body.get("url") or not events or any(e not in WEBHOOK_EVENTS for e in events):
        raise ApiError(400, "A webhook needs a url and events among " + ", ".join(WEBHOOK_EVENTS))
    hook = Webhook(uuid=uuid.uuid4().hex, url=str(body["url"]),
                   secret_token=body.get("secretToken"), events=list(events))
    call.instance.webhooks[hook.uuid] = hook
    return 201, {"success": True, "data": {"uuid": hook.uuid}}


@route("DELETE", "/webhook/(?P<hook_id>[0-9a-f]+)/")
def remove_webhook(call: ApiCall, hook_id: str) -> Answer:
    if call.instance.webhooks.pop(hook_id, None) is None:
        raise ApiError(404, f"EntityNotFoundException: webhook {hook_id}")
    return 200, {"success": True}
