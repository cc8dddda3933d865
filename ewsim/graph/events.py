"""Events: JSON <-> store mapping, CRUD on singles, masters and instances, instances and
calendarView (with delta) in a window, and the invitations real Graph would send.

Graph's calendarView delta returns *instances* (singleInstance, occurrence, exception),
while the store journals changes on masters; so a calendarView delta state is a
snapshot {instance id: version} of the window kept server-side (`GraphState`, oldest
dropped first, like Exchange's delta token cache), and each round reports the difference.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import secrets
from typing import Any

from .. import allday, ids, limits, recurrence
from ..itemxml import my_response, organizer_of
from ..ns import T, parse_bool, sub, t_el, tq
from ..operations.items import prepare_new
from ..store import Folder, Item
from ..timeutil import fmt_dt, parse_dt
from . import folders, items, props, recurrence_json, timezones
from .context import GraphContext, GraphResponse
from .delta import decode_token, encode_token, expired, incoming_token
from .errors import GraphError, bad_request
from .folders import calendar_folder
from .odata import etag, fmt_offset, parse_select, project
from .router import route

ODATA_TYPE = "#microsoft.graph.event"
SENSITIVITY = {"Normal": "normal", "Personal": "personal", "Private": "private",
               "Confidential": "confidential"}
SHOW_AS = {"Free": "free", "Tentative": "tentative", "Busy": "busy", "OOF": "oof",
           "WorkingElsewhere": "workingElsewhere", "NoData": "unknown"}
IMPORTANCE = {"Low": "low", "Normal": "normal", "High": "high"}
ATTENDEE_TAGS = {"required": "RequiredAttendees", "optional": "OptionalAttendees",
                 "resource": "Resources"}
TYPE_FILTER = re.compile(r"^\s*type\s+eq\s+'(\w+)'\s*$", re.IGNORECASE)
READ_ONLY = {"id", "@odata.etag", "@odata.type", "@odata.context", "changeKey",
             "createdDateTime", "lastModifiedDateTime", "iCalUId", "uid", "type",
             "seriesMasterId", "originalStart", "isOrganizer", "organizer", "webLink",
             "hasAttachments", "bodyPreview", "isCancelled", "responseStatus",
             "originalStartTimeZone", "originalEndTimeZone", "onlineMeeting", "calendar"}
DEFAULT_PAGE = 10
# MyResponseType as Graph's responseStatus.response.
RESPONSES = {"Organizer": "organizer", "Accept": "accepted", "Tentative": "tentativelyAccepted",
             "Decline": "declined", "NoResponseReceived": "notResponded", "Unknown": "none"}


# --- rendering -----------------------------------------------------------------------------
def _attendees(item: Item) -> list[dict[str, Any]]:
    out = []
    for kind, tag in ATTENDEE_TAGS.items():
        holder = item.props.get(tag)
        if holder is None:
            continue
        for attendee in holder.iter(tq("Attendee")):
            out.append({"type": kind,
                        "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                        "emailAddress": props.email_address(attendee.find(tq("Mailbox")))})
    return out


def event_json(ctx: GraphContext, item: Item, event_id: str, kind: str,
               master_id: str | None = None,
               original: dt.datetime | None = None) -> dict[str, Any]:
    start = parse_dt(item.text("Start"))
    end = parse_dt(item.text("End"))
    tz_el = item.props.get("StartTimeZone")
    zone_name = tz_el.get("Id", "UTC") if tz_el is not None else "UTC"
    end_tz = item.props.get("EndTimeZone")
    body = props.body(item)
    owner = ctx.store.users.get(item.mailbox)
    organizer = organizer_of(item)
    is_organizer = organizer.lower() == item.mailbox.lower()
    stored_organizer = props.email_address(item.props["Organizer"].find(tq("Mailbox"))) \
        if "Organizer" in item.props else None
    reminder = item.text("ReminderMinutesBeforeStart")
    data: dict[str, Any] = {
        "@odata.etag": etag(item.changekey), "id": event_id,
        "createdDateTime": fmt_offset(item.created),
        "lastModifiedDateTime": fmt_offset(item.modified), "changeKey": item.changekey,
        "categories": props.strings(item, "Categories"), "transactionId": None,
        "originalStartTimeZone": zone_name,
        "originalEndTimeZone": end_tz.get("Id", zone_name) if end_tz is not None else zone_name,
        "iCalUId": item.text("UID"), "uid": item.text("UID"),
        "reminderMinutesBeforeStart": int(reminder) if reminder else 15,
        "isReminderOn": (item.text("ReminderIsSet") or "false").lower() in ("true", "1"),
        "hasAttachments": any(not a.is_inline for a in item.attachments),
        "subject": item.text("Subject") or "",
        "bodyPreview": " ".join(re.sub(r"<[^>]+>", " ", body["content"]).split())[:255],
        "importance": IMPORTANCE.get(item.text("Importance") or "Normal", "normal"),
        "sensitivity": SENSITIVITY.get(item.text("Sensitivity") or "Normal", "normal"),
        "isAllDay": (item.text("IsAllDayEvent") or "false").lower() in ("true", "1"),
        "isCancelled": parse_bool(item.text("IsCancelled")), "isOrganizer": is_organizer,
        "responseRequested": True,
        "seriesMasterId": master_id, "showAs": SHOW_AS.get(
            item.text("LegacyFreeBusyStatus") or "Busy", "busy"),
        "type": kind, "webLink": f"https://outlook.office365.com/owa/?itemid={event_id}",
        "onlineMeetingUrl": None, "isOnlineMeeting": False, "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": True, "isDraft": False, "hideAttendees": False,
        "responseStatus": {"response": RESPONSES.get(my_response(item), "none"),
                           "time": "0001-01-01T00:00:00Z"},
        "body": body,
        "start": timezones.render(start, ctx.timezone) if start else None,
        "end": timezones.render(end, ctx.timezone) if end else None,
        "location": {"displayName": item.text("Location") or "", "locationType": "default",
                     "uniqueIdType": "unknown", "address": {}, "coordinates": {}},
        "locations": [{"displayName": item.text("Location"), "locationType": "default",
                       "uniqueIdType": "unknown"}] if item.text("Location") else [],
        "recurrence": recurrence_json.to_json(item.props.get("Recurrence"), zone_name)
        if kind == "seriesMaster" else None,
        "attendees": _attendees(item),
        "organizer": {"emailAddress": stored_organizer if stored_organizer and not is_organizer
                      else {"name": owner.display_name if owner else item.mailbox,
                            "address": item.mailbox}},
        "onlineMeeting": None,
    }
    if original is not None:
        data["originalStart"] = fmt_dt(original)
    return data


def to_json(ctx: GraphContext, item: Item) -> dict[str, Any]:
    """A stored event: a single one or a series master."""
    kind = "seriesMaster" if "Recurrence" in item.props else "singleInstance"
    return event_json(ctx, item, ctx.item_id(item), kind)


def instance_json(ctx: GraphContext, master: Item, index: int,
                  original: recurrence.Times | None = None) -> dict[str, Any]:
    if original is None:
        original = recurrence.slot(master, index)
    instance = recurrence.instance_item(master, index, original)
    kind = "exception" if index in master.exceptions else "occurrence"
    master_id = ctx.item_id(master)
    return event_json(ctx, instance, ids.occurrence_id(master_id, index), kind, master_id,
                      original[0] if original else None)


def window_instances(ctx: GraphContext, folder: Folder, start: dt.datetime,
                     end: dt.datetime) -> list[tuple[dt.datetime, dict[str, Any]]]:
    """(effective start, JSON) of every instance overlapping [start, end), by start."""
    found: list[tuple[dt.datetime, dict[str, Any]]] = []
    for item in folder.items.values():
        if item.tag != "CalendarItem":
            continue
        if "Recurrence" in item.props:
            for index, occ_start, _occ_end, original in recurrence.in_window(item, start, end):
                found.append((occ_start, instance_json(ctx, item, index, original)))
            continue
        item_start, item_end = parse_dt(item.text("Start")), parse_dt(item.text("End"))
        if item_start and item_end and item_start < end and item_end > start:
            found.append((item_start, to_json(ctx, item)))
    found.sort(key=lambda pair: (pair[0], pair[1]["id"]))
    return found


# --- writing -------------------------------------------------------------------------------
def _reverse(mapping: dict[str, str], value: Any, name: str) -> str:
    reverse = {v: k for k, v in mapping.items()}
    if value not in reverse:
        raise bad_request(f"Invalid {name} '{value}'.", "ErrorInvalidProperty")
    return reverse[value]


def apply_json(item: Item, data: dict[str, Any], instance: bool = False) -> None:
    for name, value in data.items():
        if name in READ_ONLY:
            continue
        if name in ("start", "end"):
            instant, zone_name = timezones.parse(value, name)
            tag = "Start" if name == "start" else "End"
            item.props[tag] = t_el(tag, fmt_dt(instant))
            if not instance:
                tz_tag = "StartTimeZone" if name == "start" else "EndTimeZone"
                item.props[tz_tag] = t_el(tz_tag, Id=zone_name)
        elif name == "subject":
            props.set_text(item, "Subject", value)
        elif name == "body":
            props.set_body(item, value)
        elif name == "categories":
            props.set_strings(item, "Categories", value)
        elif name == "isAllDay":
            props.set_text(item, "IsAllDayEvent", bool(value))
        elif name == "sensitivity":
            props.set_text(item, "Sensitivity", _reverse(SENSITIVITY, value, name))
        elif name == "showAs":
            props.set_text(item, "LegacyFreeBusyStatus", _reverse(SHOW_AS, value, name))
        elif name == "importance":
            props.set_text(item, "Importance", _reverse(IMPORTANCE, value, name))
        elif name == "isReminderOn":
            props.set_text(item, "ReminderIsSet", bool(value))
        elif name == "reminderMinutesBeforeStart":
            props.set_text(item, "ReminderMinutesBeforeStart", int(value))
        elif name == "location":
            props.set_text(item, "Location", (value or {}).get("displayName"))
        elif name == "locations":
            if value and not data.get("location"):
                props.set_text(item, "Location", value[0].get("displayName"))
        elif name == "attendees":
            for tag in ATTENDEE_TAGS.values():
                item.props.pop(tag, None)
            for spec in value or []:
                kind = str((spec or {}).get("type") or "required")
                if kind not in ATTENDEE_TAGS:
                    raise bad_request(f"Invalid attendee type '{kind}'.",
                                      "ErrorInvalidProperty")
                tag = ATTENDEE_TAGS[kind]
                holder = item.props.setdefault(tag, t_el(tag))
                attendee = sub(holder, T, "Attendee")
                attendee.append(props.mailbox_element("Mailbox", spec))
                sub(attendee, T, "ResponseType", "Unknown")
        elif name == "recurrence":
            if instance:
                raise bad_request("Recurrence can only be set on the series master.",
                                  "ErrorInvalidPropertySet")
            if value is None:
                item.props.pop("Recurrence", None)
            else:
                item.props["Recurrence"] = recurrence_json.to_ews(value)
        elif name == "singleValueExtendedProperties":
            items.apply_extended(item, data)
        elif name in ("responseRequested", "allowNewTimeProposals", "isOnlineMeeting",
                      "hideAttendees", "transactionId", "onlineMeetingProvider"):
            continue   # accepted, not simulated
        else:
            raise bad_request(f"The property '{name}' does not exist on type "
                              f"'microsoft.graph.event'.", "ErrorInvalidProperty")
    limits.cut_item(item)   # the subject, as Exchange keeps it


def _validate_times(item: Item) -> tuple[dt.datetime, dt.datetime]:
    start, end = parse_dt(item.text("Start")), parse_dt(item.text("End"))
    if start is None or end is None:
        raise bad_request("An event needs start and end.", "ErrorInvalidProperty")
    if end < start:
        raise GraphError(400, "ErrorInvalidRequest",
                         "The end date must be later than the start date.")
    problem = allday.graph_problem(item)
    if problem:   # Graph refuses what EWS would move to midnights (allday.py)
        raise GraphError(400, "ErrorPropertyValidationFailure", problem)
    return start, end


def _record_mail(ctx: GraphContext, operation: str, item: Item, event_id: str) -> None:
    """Graph has no SendToNone: a write on a meeting the mailbox organizes mails its
    attendees (a write on an attendee's own copy mails nobody)."""
    people = [a["emailAddress"]["address"] for a in _attendees(item)]
    if not people or organizer_of(item).lower() != item.mailbox.lower():
        return
    ctx.server.sent_log.append({"protocol": "graph", "operation": operation,
                                "item_id": event_id, "subject": item.text("Subject"),
                                "recipients": people})


# --- lookups -------------------------------------------------------------------------------
def resolve(ctx: GraphContext, event: str) -> tuple[Item, int | None]:
    """An event id -> (stored item, instance index or None)."""
    occurrence = ids.parse_occurrence_id(event)
    if occurrence is not None:
        master, _ = resolve(ctx, occurrence[0])
        if recurrence.occurrence(master, occurrence[1]) is None:
            raise GraphError(404, "ErrorItemNotFound")
        return master, occurrence[1]
    item = ctx.find_item(event)
    folder = ctx.store.folders.get(item.folder_id)
    if item.tag != "CalendarItem" or folder is None or folder.folder_class != "IPF.Appointment":
        # An event moved to Deleted Items is no longer one of the calendar's events.
        raise GraphError(404, "ErrorItemNotFound")
    return item, None


def _fragment(ctx: GraphContext) -> str:
    return f"users('{ctx.mailbox}')/events/$entity"


def _render(ctx: GraphContext, item: Item, index: int | None) -> GraphResponse:
    if index is None:
        return items.entity(ctx, item, to_json, _fragment(ctx))
    data = project(instance_json(ctx, item, index),
                   parse_select(ctx.request.query.get("$select")))
    scratch = recurrence.instance_item(item, index)
    from .odata import parse_expand
    data.update(items.expansions(ctx, scratch, parse_expand(ctx.request.query.get("$expand"))))
    return GraphResponse(200, {"@odata.context": ctx.context_url(_fragment(ctx)), **data})


# --- routes: events ------------------------------------------------------------------------
def _create(ctx: GraphContext, calendar: str | None) -> GraphResponse:
    folder = calendar_folder(ctx, calendar)
    data = ctx.request.json()
    item = Item(id=ids.item_id(), tag="CalendarItem", folder_id=folder.id,
                mailbox=folder.mailbox)
    apply_json(item, data)
    _validate_times(item)
    if "Recurrence" in item.props and next(recurrence.instances(item), None) is None:
        raise bad_request("The recurrence pattern yields no occurrence.",
                          "ErrorInvalidRecurrence")
    prepare_new(item, folder.mailbox)
    item.size = 800
    ctx.store.add_item(folder, item)
    _record_mail(ctx, "events.create", item, ctx.item_id(item))
    return items.entity(ctx, item, to_json, _fragment(ctx), status=201)


@route("POST", "events", "events.create")
def create_default(ctx: GraphContext) -> GraphResponse:
    return _create(ctx, None)


@route("POST", "calendars/{calendar}/events", "events.create")
@route("POST", "calendar/events", "events.create")
def create_in_calendar(ctx: GraphContext, calendar: str | None = None) -> GraphResponse:
    return _create(ctx, calendar)


@route("GET", "events", "events.list")
@route("GET", "calendar/events", "events.list")
@route("GET", "calendars/{calendar}/events", "events.list")
def list_events(ctx: GraphContext, calendar: str | None = None) -> GraphResponse:
    """Singles and series masters (Graph's /events does not expand series)."""
    folder = calendar_folder(ctx, calendar)
    chosen = [i for i in folder.items.values() if i.tag == "CalendarItem"]
    where = ctx.request.query.get("$filter")
    by_type = TYPE_FILTER.match(where or "")
    if by_type:
        wanted = by_type.group(1)
        chosen = [i for i in chosen if ("seriesMaster" if "Recurrence" in i.props
                                        else "singleInstance") == wanted]
    return items.listing(ctx, chosen, to_json, f"calendars/{folder.id}/events",
                         f"users('{ctx.mailbox}')/events", apply_filter=not by_type)


@route("GET", "events/{event}", "events.get")
@route("GET", "calendars/{calendar}/events/{event}", "events.get")
def get_event(ctx: GraphContext, event: str, calendar: str | None = None) -> GraphResponse:
    item, index = resolve(ctx, event)
    return _render(ctx, item, index)


@route("GET", "events/{event}/calendar", "events.calendar")
def get_event_calendar(ctx: GraphContext, event: str) -> GraphResponse:
    """The calendar an event is in (its `calendar` navigation property): where an event
    moved to another calendar is now; 404 like the event itself once it is in Deleted Items."""
    item, _ = resolve(ctx, event)
    return folders.entity(ctx, f"users('{ctx.mailbox}')/calendars/$entity",
                          folders.calendar_json(ctx, ctx.store.folders[item.folder_id]))


@route("PATCH", "events/{event}", "events.update")
@route("PATCH", "calendars/{calendar}/events/{event}", "events.update")
def update_event(ctx: GraphContext, event: str, calendar: str | None = None) -> GraphResponse:
    item, index = resolve(ctx, event)
    data = ctx.request.json()
    if index is None:
        items.check_if_match(ctx, item)
        series = recurrence.signature(item)
        kept = ({k: copy.deepcopy(v) for k, v in item.props.items()},
                {k: copy.deepcopy(v) for k, v in item.ext.items()})
        try:
            apply_json(item, data)
            _validate_times(item)
        except GraphError:   # a refused PATCH changes nothing
            item.props, item.ext = kept
            raise
        if recurrence.signature(item) != series:
            # Exchange drops every exception when the pattern or the series' time changes.
            recurrence.reset_exceptions(item)
        ctx.store.updated(item)
        _record_mail(ctx, "events.update", item, ctx.item_id(item))
        return _render(ctx, item, None)
    instance = recurrence.instance_item(item, index)
    wanted = ctx.request.headers.get("if-match")
    if wanted and wanted.strip() != "*" and \
            wanted.strip().removeprefix("W/").strip('"') != instance.changekey:
        raise GraphError(412, "ErrorIrresolvableConflict")
    before = (parse_dt(instance.text("Start")), parse_dt(instance.text("End")))
    apply_json(instance, data, instance=True)
    start, end = _validate_times(instance)
    if (start, end) != before and recurrence.crosses_boundary(item, index, start):
        raise GraphError(400, "ErrorOccurrenceCrossingBoundary")
    instance.props["Start"] = t_el("Start", fmt_dt(start))
    instance.props["End"] = t_el("End", fmt_dt(end))
    recurrence.save_exception(item, index, instance)
    ctx.store.updated(item)          # a new changeKey on the master too, as in Exchange
    _record_mail(ctx, "events.update", instance, ids.occurrence_id(ctx.item_id(item), index))
    return _render(ctx, item, index)


@route("DELETE", "events/{event}", "events.delete")
@route("DELETE", "calendars/{calendar}/events/{event}", "events.delete")
def delete_event(ctx: GraphContext, event: str, calendar: str | None = None) -> GraphResponse:
    item, index = resolve(ctx, event)
    if index is None:
        items.check_if_match(ctx, item)
        _record_mail(ctx, "events.delete", item, ctx.item_id(item))
        items.soft_delete(ctx, item)
        return GraphResponse(204)
    instance = recurrence.instance_item(item, index)
    _record_mail(ctx, "events.delete", instance, ids.occurrence_id(ctx.item_id(item), index))
    item.exceptions.pop(index, None)
    item.deleted_occurrences.add(index)
    ctx.store.updated(item)
    return GraphResponse(204)


@route("GET", "events/{event}/instances", "events.instances")
def list_instances(ctx: GraphContext, event: str) -> GraphResponse:
    master, index = resolve(ctx, event)
    if index is not None or "Recurrence" not in master.props:
        raise GraphError(400, "ErrorInvalidRequest",
                         "Instances can only be listed for a series master.")
    start, end = timezones.parse_window(ctx.request.query)
    found = sorted(recurrence.in_window(master, start, end), key=lambda r: (r[1], r[0]))
    values = [instance_json(ctx, master, idx, original)
              for idx, _s, _e, original in found]
    return _paged(ctx, values, f"events/{event}/instances",
                  f"users('{ctx.mailbox}')/events('{event}')/instances")


def _paged(ctx: GraphContext, values: list[dict[str, Any]], path: str,
           fragment: str) -> GraphResponse:
    query = ctx.request.query
    fields = parse_select(query.get("$select"))
    skip = int(query.get("$skip") or 0)
    top = ctx.page_size(DEFAULT_PAGE)
    page = values[skip:skip + top]
    body: dict[str, Any] = {"@odata.context": ctx.context_url(fragment),
                            "value": [project(v, fields) for v in page]}
    if skip + top < len(values):
        body["@odata.nextLink"] = ctx.link(path, **{**query, "$skip": str(skip + top)})
    return GraphResponse(200, body)


# --- routes: calendarView ------------------------------------------------------------------
@route("GET", "calendarView", "calendarView.list")
@route("GET", "calendar/calendarView", "calendarView.list")
@route("GET", "calendars/{calendar}/calendarView", "calendarView.list")
def calendar_view(ctx: GraphContext, calendar: str | None = None) -> GraphResponse:
    folder = calendar_folder(ctx, calendar)
    start, end = timezones.parse_window(ctx.request.query)
    values = [data for _start, data in window_instances(ctx, folder, start, end)]
    return _paged(ctx, values, "calendarView" if calendar is None
                  else f"calendars/{calendar}/calendarView",
                  f"users('{ctx.mailbox}')/calendarView")


def _version(data: dict[str, Any]) -> str:
    return f"{data['changeKey']}|{data['start']['dateTime']}|{data['end']['dateTime']}"


@route("GET", "calendarView/delta", "calendarView.delta")
@route("GET", "calendar/calendarView/delta", "calendarView.delta")
@route("GET", "calendars/{calendar}/calendarView/delta", "calendarView.delta")
def calendar_view_delta(ctx: GraphContext, calendar: str | None = None) -> GraphResponse:
    folder = calendar_folder(ctx, calendar)
    path = "calendarView/delta" if calendar is None else f"calendars/{calendar}/calendarView/delta"
    query = ctx.request.query
    scope = f"view:{folder.id}"
    state = ctx.server.graph
    token = incoming_token(ctx)
    initial = ctx.link(path, **{k: v for k, v in query.items()
                                if k.lower() in ("startdatetime", "enddatetime")})
    if token is not None and "$skiptoken" in query:
        # A further page of a round already computed.
        data = decode_token(ctx, token, scope, initial)
        saved = state.load_view(data["key"])
        if saved is None:
            raise expired(initial)
        return _view_page(ctx, path, scope, data["key"], saved, int(data["offset"]))
    if token is None:
        start, end = timezones.parse_window(query)
        previous: dict[str, str] = {}
        select = query.get("$select")
    else:
        data = decode_token(ctx, token, scope, initial)
        saved = state.load_view(data["key"])
        if saved is None:
            raise expired(initial)
        start = dt.datetime.fromisoformat(saved["start"])
        end = dt.datetime.fromisoformat(saved["end"])
        previous = saved["snapshot"]
        select = saved["select"]
    current = {data["id"]: data for _s, data in window_instances(ctx, folder, start, end)}
    snapshot = {event_id: _version(data) for event_id, data in current.items()}
    fields = parse_select(select)
    pending: list[dict[str, Any]] = [project(data, fields) for event_id, data in current.items()
                                     if previous.get(event_id) != snapshot[event_id]]
    pending.extend({"@odata.type": ODATA_TYPE, "id": event_id,
                    "@removed": {"reason": "deleted"}}
                   for event_id in previous if event_id not in current)
    key = secrets.token_urlsafe(12)
    saved = {"start": start.isoformat(), "end": end.isoformat(), "snapshot": snapshot,
             "select": select, "pending": pending}
    state.save_view(key, saved)
    return _view_page(ctx, path, scope, key, saved, 0)


def _view_page(ctx: GraphContext, path: str, scope: str, key: str, saved: dict[str, Any],
               offset: int) -> GraphResponse:
    size = ctx.page_size(DEFAULT_PAGE)
    pending = saved["pending"]
    page = pending[offset:offset + size]
    gen = ctx.server.graph.generation[ctx.mailbox]
    body: dict[str, Any] = {"@odata.context": ctx.context_url("Collection(event)"),
                            "value": page}
    if offset + size < len(pending):
        token = encode_token({"scope": scope, "key": key, "offset": offset + size, "gen": gen})
        body["@odata.nextLink"] = ctx.link(path, **{"$skiptoken": token})
    else:
        token = encode_token({"scope": scope, "key": key, "gen": gen})
        body["@odata.deltaLink"] = ctx.link(path, **{"$deltatoken": token})
    return GraphResponse(200, body)
