"""Every resource the simulator serves has the properties Graph v1.0 documents for it,
with the documented JSON types (what a client deserialising strictly would need)."""

from __future__ import annotations

from typing import Any

from .client import Graph

TEXT = (str, type(None))
LIST = list
OBJECT = (dict, type(None))
BOOL = bool
NUMBER = int

CONTACT = {"id": str, "changeKey": str, "createdDateTime": str, "lastModifiedDateTime": str,
           "categories": LIST, "parentFolderId": str, "birthday": TEXT, "displayName": TEXT,
           "givenName": TEXT, "surname": TEXT, "middleName": TEXT, "nickName": TEXT,
           "title": TEXT, "companyName": TEXT, "jobTitle": TEXT, "department": TEXT,
           "emailAddresses": LIST, "imAddresses": LIST, "businessPhones": LIST,
           "homePhones": LIST, "mobilePhone": TEXT, "homeAddress": dict,
           "businessAddress": dict, "otherAddress": dict, "personalNotes": TEXT,
           "children": LIST, "fileAs": TEXT, "spouseName": TEXT, "manager": TEXT}
MESSAGE = {"id": str, "changeKey": str, "createdDateTime": str, "lastModifiedDateTime": str,
           "receivedDateTime": str, "sentDateTime": str, "subject": TEXT, "body": dict,
           "bodyPreview": str, "importance": str, "isRead": BOOL, "isDraft": BOOL,
           "hasAttachments": BOOL, "internetMessageId": TEXT, "parentFolderId": str,
           "conversationId": str, "from": OBJECT, "sender": OBJECT, "toRecipients": LIST,
           "ccRecipients": LIST, "bccRecipients": LIST, "replyTo": LIST, "flag": dict,
           "categories": LIST, "webLink": str, "inferenceClassification": str}
EVENT = {"id": str, "changeKey": str, "createdDateTime": str, "lastModifiedDateTime": str,
         "subject": TEXT, "body": dict, "bodyPreview": str, "start": dict, "end": dict,
         "isAllDay": BOOL, "sensitivity": str, "showAs": str, "importance": str,
         "type": str, "seriesMasterId": TEXT, "recurrence": OBJECT, "location": dict,
         "locations": LIST, "attendees": LIST, "organizer": dict, "iCalUId": TEXT,
         "isCancelled": BOOL, "isOrganizer": BOOL, "isReminderOn": BOOL,
         "reminderMinutesBeforeStart": NUMBER, "categories": LIST, "responseStatus": dict,
         "originalStartTimeZone": str, "originalEndTimeZone": str, "webLink": str,
         "hasAttachments": BOOL}
MAIL_FOLDER = {"id": str, "displayName": str, "parentFolderId": TEXT,
               "childFolderCount": NUMBER, "unreadItemCount": NUMBER, "totalItemCount": NUMBER}
CONTACT_FOLDER = {"id": str, "displayName": str, "parentFolderId": TEXT}
CALENDAR = {"id": str, "name": str, "changeKey": str, "isDefaultCalendar": BOOL,
            "canEdit": BOOL, "owner": dict, "color": str}
FILE_ATTACHMENT = {"id": str, "name": str, "contentType": str, "size": NUMBER,
                   "isInline": BOOL, "lastModifiedDateTime": str, "contentBytes": str}


def _check(resource: dict[str, Any], schema: dict[str, Any], what: str) -> None:
    missing = sorted(set(schema) - set(resource))
    assert not missing, f"{what} lacks {missing}"
    wrong = {k: type(resource[k]).__name__ for k, t in schema.items()
             if not isinstance(resource[k], t)}
    assert not wrong, f"{what}: wrong types {wrong}"
    assert resource["@odata.etag" if "changeKey" in schema else "id"]


def test_every_resource_has_its_documented_properties(ewsim):
    graph = Graph.connect(ewsim, prefer=['IdType="ImmutableId"', 'outlook.timezone="UTC"'])
    contact = graph.post("contacts", {"givenName": "Jana"}).json
    _check(contact, CONTACT, "contact")
    _check(graph.get(f"contacts/{contact['id']}").json, CONTACT, "contact (get)")
    made = ewsim.control.deliver("alice@example.com", subject="Hi", body="x",
                                 **{"from": "p@x.cz"},
                                 attachments=[{"name": "a.txt", "content": "abc"}])
    message = graph.get(f"messages/{made['immutable_id']}").json
    _check(message, MESSAGE, "message")
    assert message["body"].keys() == {"contentType", "content"}
    attachment = graph.get(f"messages/{made['immutable_id']}/attachments").json["value"][0]
    _check(attachment, FILE_ATTACHMENT, "fileAttachment")
    event = graph.post("events", {
        "subject": "S", "start": {"dateTime": "2030-03-04T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-03-04T10:00:00", "timeZone": "UTC"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1},
                       "range": {"type": "endDate", "startDate": "2030-03-04",
                                 "endDate": "2030-03-06"}}}).json
    _check(event, EVENT, "seriesMaster")
    assert set(event["recurrence"]) == {"pattern", "range"}
    assert set(event["start"]) == {"dateTime", "timeZone"}
    instance = graph.get(f"events/{event['id']}/instances?startDateTime=2030-03-01T00:00:00Z"
                         f"&endDateTime=2030-03-10T00:00:00Z").json["value"][0]
    _check(instance, EVENT, "occurrence")
    assert isinstance(instance["originalStart"], str)
    for folder in graph.get("mailFolders").json["value"]:
        _check(folder, MAIL_FOLDER, "mailFolder")
    _check(graph.get("contactFolders/contacts").json, CONTACT_FOLDER, "contactFolder")
    for calendar in graph.get("calendars").json["value"]:
        _check(calendar, CALENDAR, "calendar")


def test_errors_have_the_documented_error_shape(ewsim):
    graph = Graph.connect(ewsim)
    for answer in (graph.get("contacts/AAMkA" + "x" * 40), graph.get("nothing-here"),
                   graph.get("/users/nobody@example.com/contacts"),
                   graph.post("contacts", {"bogus": 1})):
        error = answer.json["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
        assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
        assert answer.headers["Content-Type"].startswith("application/json")
