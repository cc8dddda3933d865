"""Calendar through Graph: events in any time zone, series with occurrences and
exceptions, instances, calendarView and its delta, and the invitations Graph sends."""

from __future__ import annotations

from exchangelib import CalendarItem

from ..conftest import make_account
from .client import STAMP, Graph, quote

WINDOW = "startDateTime=2030-03-01T00:00:00Z&endDateTime=2030-04-01T00:00:00Z"
UTC_PREFER = ['IdType="ImmutableId"', 'outlook.timezone="UTC"']


def _graph(ewsim) -> Graph:
    return Graph.connect(ewsim, prefer=list(UTC_PREFER))


def _weekly(graph: Graph, **extra):
    body = {"subject": "Standup",
            "start": {"dateTime": "2030-03-04T09:00:00", "timeZone": "Europe/Prague"},
            "end": {"dateTime": "2030-03-04T09:30:00", "timeZone": "Europe/Prague"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1,
                                       "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
                           "range": {"type": "numbered", "startDate": "2030-03-04",
                                     "numberOfOccurrences": 10}}, **extra}
    answer = graph.post("events", body)
    assert answer.status == 201, answer.raw
    return answer.json


def test_single_event_in_a_windows_zone_is_stored_in_utc_and_seen_by_ews(ewsim):
    graph = _graph(ewsim)
    created = graph.post("calendars/" + graph.get("calendar").json["id"] + "/events", {
        "subject": "Visit", "location": {"displayName": "Brno"}, "sensitivity": "private",
        "showAs": "tentative", "body": {"contentType": "text", "content": "agenda"},
        "start": {"dateTime": "2030-03-05T10:00:00.0000000",
                  "timeZone": "Central Europe Standard Time"},
        "end": {"dateTime": "2030-03-05T11:00:00.0000000",
                "timeZone": "Central Europe Standard Time"},
        "singleValueExtendedProperties": [{"id": STAMP, "value": "ev-1"}]})
    assert created.status == 201
    event = created.json
    assert event["type"] == "singleInstance" and event["seriesMasterId"] is None
    assert event["start"] == {"dateTime": "2030-03-05T09:00:00.0000000", "timeZone": "UTC"}
    assert event["originalStartTimeZone"] == "Central Europe Standard Time"
    assert (event["sensitivity"], event["showAs"]) == ("private", "tentative")
    assert event["location"]["displayName"] == "Brno" and event["iCalUId"]
    prague = Graph(ewsim, graph.access_token,
                   prefer=['IdType="ImmutableId"', 'outlook.timezone="Europe/Prague"'])
    assert prague.get(f"events/{event['id']}").json["start"]["dateTime"] == \
        "2030-03-05T10:00:00.0000000"
    account = make_account(ewsim)
    seen = list(account.calendar.all())
    assert [(e.subject, e.start.isoformat()) for e in seen] == [
        ("Visit", "2030-03-05T09:00:00+00:00")]
    assert not ewsim.problems()


def test_series_instances_have_types_original_start_and_master_id(ewsim):
    graph = _graph(ewsim)
    master = _weekly(graph)
    assert master["type"] == "seriesMaster"
    assert master["recurrence"]["pattern"]["daysOfWeek"] == ["monday"]
    assert master["recurrence"]["range"]["numberOfOccurrences"] == 10
    instances = graph.get(f"events/{master['id']}/instances?{WINDOW}&$top=50").json["value"]
    assert len(instances) == 4          # the Mondays of March 2030
    first = instances[0]
    assert first["type"] == "occurrence" and first["seriesMasterId"] == master["id"]
    assert first["originalStart"] == "2030-03-04T08:00:00Z"
    assert first["start"]["dateTime"] == "2030-03-04T08:00:00.0000000"
    assert graph.get(f"events/{first['id']}").json["id"] == first["id"]


def test_patch_of_an_occurrence_makes_an_exception_and_a_new_master_change_key(ewsim):
    graph = _graph(ewsim)
    master = _weekly(graph)
    second = graph.get(f"events/{master['id']}/instances?{WINDOW}").json["value"][1]
    moved = graph.patch(f"events/{second['id']}", {
        "subject": "Standup (moved)",
        "start": {"dateTime": "2030-03-11T12:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-03-11T12:30:00", "timeZone": "UTC"}})
    assert moved.status == 200, moved.raw
    assert moved.json["type"] == "exception" and moved.json["id"] == second["id"]
    assert moved.json["originalStart"] == second["originalStart"]
    after = graph.get(f"events/{master['id']}").json
    assert after["changeKey"] != master["changeKey"] and after["subject"] == "Standup"
    listed = graph.get("events?$select=id,changeKey,type").json["value"]
    assert listed == [{"@odata.etag": after["@odata.etag"], "id": master["id"],
                       "changeKey": after["changeKey"], "type": "seriesMaster"}]
    crossing = graph.patch(f"events/{second['id']}", {
        "start": {"dateTime": "2030-03-18T12:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-03-18T12:30:00", "timeZone": "UTC"}})
    assert crossing.status == 400 and crossing.code == "ErrorOccurrenceCrossingBoundary"
    recurrence_on_instance = graph.patch(f"events/{second['id']}",
                                         {"recurrence": master["recurrence"]})
    assert recurrence_on_instance.status == 400


def test_delete_of_an_occurrence_removes_that_instance_only(ewsim):
    graph = _graph(ewsim)
    master = _weekly(graph)
    instances = graph.get(f"events/{master['id']}/instances?{WINDOW}").json["value"]
    assert graph.delete(f"events/{instances[2]['id']}").status == 204
    left = graph.get(f"events/{master['id']}/instances?{WINDOW}").json["value"]
    assert [i["id"] for i in left] == [instances[0]["id"], instances[1]["id"],
                                       instances[3]["id"]]
    assert graph.get(f"events/{instances[2]['id']}").status == 404


def test_deleted_event_moves_to_deleted_items_and_is_no_longer_an_event(ewsim):
    graph = _graph(ewsim)
    master = _weekly(graph)
    assert graph.delete(f"events/{master['id']}").status == 204
    gone = graph.get(f"events/{master['id']}")
    assert gone.status == 404 and gone.code == "ErrorItemNotFound"
    trash = graph.get("mailFolders/deleteditems/messages").json["value"]
    assert [m["id"] for m in trash] == [master["id"]]
    assert graph.get(f"calendarView?{WINDOW}").json["value"] == []


def test_an_event_names_its_calendar_wherever_it_moved_and_keeps_its_immutable_id(ewsim):
    graph = _graph(ewsim)
    default = graph.get("calendar").json
    master = _weekly(graph)
    here = graph.get(f"events/{master['id']}/calendar?$select=id,name")
    assert here.status == 200 and (here.json["id"], here.json["name"]) == \
        (default["id"], "Calendar")
    old = ewsim.control.call("POST", "folders", {"mailbox": ewsim.user, "parent": "calendar",
                                                 "name": "Old",
                                                 "folder_class": "IPF.Appointment"})
    ewsim.control.move_item(master["id"], old["id"])   # another client (Outlook) drags it
    moved = graph.get(f"events/{master['id']}/calendar?$select=id,name").json
    assert (moved["id"], moved["name"]) == (old["id"], "Old")
    ewsim.control.move_item(master["id"], "deleteditems")
    gone = graph.get(f"events/{master['id']}/calendar")
    assert gone.status == 404 and gone.code == "ErrorItemNotFound"


def test_calendar_view_delta_reports_instances_changes_and_removals(ewsim):
    graph = _graph(ewsim)
    _weekly(graph)
    single = graph.post("events", {"subject": "One-off",
                                   "start": {"dateTime": "2030-03-20T14:00:00", "timeZone": "UTC"},
                                   "end": {"dateTime": "2030-03-20T15:00:00", "timeZone": "UTC"}}
                        ).json
    graph.post("events", {"subject": "Outside",
                          "start": {"dateTime": "2030-05-20T14:00:00", "timeZone": "UTC"},
                          "end": {"dateTime": "2030-05-20T15:00:00", "timeZone": "UTC"}})
    values, delta_link = graph.delta_round(f"calendarView/delta?{WINDOW}", 2)
    kinds = sorted(v["type"] for v in values)
    assert kinds == ["occurrence"] * 4 + ["singleInstance"]
    assert graph.delta_round(delta_link)[0] == []
    occurrences = sorted((v for v in values if v["type"] == "occurrence"),
                         key=lambda v: v["originalStart"])
    graph.patch(f"events/{occurrences[0]['id']}", {"subject": "Changed once"})
    graph.delete(f"events/{single['id']}")
    values, delta_link = graph.delta_round(delta_link)
    by_id = {v["id"]: v for v in values}
    assert by_id[occurrences[0]["id"]]["type"] == "exception"
    assert by_id[occurrences[0]["id"]]["subject"] == "Changed once"
    assert by_id[single["id"]]["@removed"] == {"reason": "deleted"}
    ewsim.control.expire_delta("alice@example.com")
    assert graph.get(delta_link).status == 410


def test_calendar_view_needs_a_window(ewsim):
    graph = _graph(ewsim)
    answer = graph.get("calendarView/delta")
    assert answer.status == 400 and answer.code == "ErrorInvalidParameter"
    _weekly(graph)
    view = graph.get(f"calendarView?{WINDOW}&$top=3")
    assert len(view.json["value"]) == 3 and "@odata.nextLink" in view.json
    rest = graph.get(view.json["@odata.nextLink"]).json["value"]
    assert len(rest) == 1


def test_event_created_by_exchangelib_is_read_by_graph(ewsim):
    import datetime as dt

    from ..conftest import TZ
    account = make_account(ewsim)
    CalendarItem(account=account, folder=account.calendar, subject="From EWS",
                 start=dt.datetime(2030, 3, 6, 9, 0, tzinfo=TZ),
                 end=dt.datetime(2030, 3, 6, 10, 0, tzinfo=TZ)).save()
    graph = _graph(ewsim)
    events = graph.get("events").json["value"]
    assert [(e["subject"], e["start"]["dateTime"]) for e in events] == [
        ("From EWS", "2030-03-06T08:00:00.0000000")]


def test_stamp_and_type_filters_on_event_lists(ewsim):
    graph = _graph(ewsim)
    master = _weekly(graph, singleValueExtendedProperties=[{"id": STAMP, "value": "ser-1"}])
    graph.post("events", {"subject": "Single",
                          "start": {"dateTime": "2030-03-20T14:00:00", "timeZone": "UTC"},
                          "end": {"dateTime": "2030-03-20T15:00:00", "timeZone": "UTC"}})
    masters = graph.get("events?$filter=" + quote("type eq 'seriesMaster'")).json["value"]
    assert [m["id"] for m in masters] == [master["id"]]
    flt = quote(f"singleValueExtendedProperties/any(p: p/id eq '{STAMP}' and p/value eq 'ser-1')")
    assert [e["id"] for e in graph.get(f"events?$filter={flt}").json["value"]] == [master["id"]]


def test_writes_with_attendees_are_recorded_as_invitations_graph_would_send(ewsim):
    graph = _graph(ewsim)
    plain = graph.post("events", {"subject": "Alone",
                                  "start": {"dateTime": "2030-03-20T14:00:00", "timeZone": "UTC"},
                                  "end": {"dateTime": "2030-03-20T15:00:00", "timeZone": "UTC"}})
    assert plain.status == 201
    assert ewsim.control.invitations() == []
    meeting = graph.post("events", {
        "subject": "Meeting", "attendees": [
            {"type": "required", "emailAddress": {"address": "petr@stavby.cz", "name": "Petr"}}],
        "start": {"dateTime": "2030-03-21T14:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-03-21T15:00:00", "timeZone": "UTC"}}).json
    assert meeting["attendees"][0]["emailAddress"]["address"] == "petr@stavby.cz"
    graph.delete(f"events/{meeting['id']}")
    sent = ewsim.control.invitations()
    assert [(s["operation"], s["recipients"]) for s in sent] == [
        ("events.create", ["petr@stavby.cz"]), ("events.delete", ["petr@stavby.cz"])]


def test_bad_event_bodies_are_400_and_create_nothing(ewsim):
    graph = _graph(ewsim)
    no_end = graph.post("events", {"subject": "x",
                                   "start": {"dateTime": "2030-03-20T14:00:00",
                                             "timeZone": "UTC"}})
    assert no_end.status == 400
    bad_zone = graph.post("events", {
        "subject": "x", "start": {"dateTime": "2030-03-20T14:00:00", "timeZone": "Mars/Base"},
        "end": {"dateTime": "2030-03-20T15:00:00", "timeZone": "Mars/Base"}})
    assert bad_zone.status == 400
    backwards = graph.post("events", {
        "subject": "x", "start": {"dateTime": "2030-03-20T15:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-03-20T14:00:00", "timeZone": "UTC"}})
    assert backwards.status == 400
    assert graph.get("events").json["value"] == []


def _attendee_copy(ewsim, **props: str) -> str:
    """Alice's copy of a meeting Carol organizes, as Exchange delivers it to her calendar."""
    extra = "".join(f"<t:{name}>{value}</t:{name}>" for name, value in props.items())
    xml = ("<t:CalendarItem><t:Subject>Review</t:Subject>"
           "<t:Start>2030-03-22T14:00:00Z</t:Start><t:End>2030-03-22T15:00:00Z</t:End>"
           f"{extra}<t:Organizer><t:Mailbox><t:Name>Carol</t:Name>"
           "<t:EmailAddress>carol@partner.example</t:EmailAddress></t:Mailbox></t:Organizer>"
           "<t:RequiredAttendees><t:Attendee><t:Mailbox>"
           "<t:EmailAddress>alice@example.com</t:EmailAddress></t:Mailbox></t:Attendee>"
           "</t:RequiredAttendees></t:CalendarItem>")
    return ewsim.control.create_item("alice@example.com", folder="calendar", xml=xml,
                                     tag="CalendarItem")["id"]


def test_an_attendees_copy_names_its_organizer_answer_and_cancellation(ewsim):
    graph = _graph(ewsim)
    _attendee_copy(ewsim, MyResponseType="Decline", IsCancelled="true")
    own = graph.post("events", {"subject": "Own",
                                "start": {"dateTime": "2030-03-20T14:00:00", "timeZone": "UTC"},
                                "end": {"dateTime": "2030-03-20T15:00:00", "timeZone": "UTC"}})
    events = {e["subject"]: e for e in graph.get("events").json["value"]}
    review = events["Review"]
    assert review["organizer"]["emailAddress"] == {"name": "Carol",
                                                   "address": "carol@partner.example"}
    assert (review["isOrganizer"], review["isCancelled"]) == (False, True)
    assert review["responseStatus"]["response"] == "declined"
    mine = events["Own"]
    assert own.status == 201 and mine["isOrganizer"] is True and mine["isCancelled"] is False
    assert mine["organizer"]["emailAddress"]["address"] == "alice@example.com"
    assert mine["responseStatus"]["response"] == "organizer"


def test_writes_on_an_attendees_copy_mail_nobody(ewsim):
    # Only the organizer's changes and deletion reach the attendees.
    graph = _graph(ewsim)
    _attendee_copy(ewsim)
    (event,) = graph.get("events").json["value"]
    assert event["responseStatus"]["response"] == "notResponded"
    moved = graph.patch(f"events/{event['id']}", {"location": {"displayName": "Room 2"}})
    assert moved.status == 200
    assert graph.delete(f"events/{event['id']}").status == 204
    assert ewsim.control.invitations() == []
