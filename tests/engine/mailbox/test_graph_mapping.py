"""Records <-> Graph JSON, Retry-After, $batch splitting and error words: the Graph backend's
pure parts, without a server (their use against one is test_graph_contract.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.mailbox import graph_mapping as m
from engine.mailbox.base import (
    Auth,
    AuthenticationFailed,
    FolderNotFound,
    ImpersonationDenied,
    MailboxAccess,
    MailboxNotFound,
    ServiceUnavailable,
    Throttled,
)
from engine.mailbox.graph import _State
from engine.mailbox.graph_http import (
    BatchRequest,
    Budget,
    GraphError,
    _token_problem,
    batch_payload,
    batch_results,
    chunked,
    client_credential,
    error_from,
    retry_after,
    translate,
)
from engine.records import (
    Address,
    Attendee,
    ContactRecord,
    EventRecord,
    MessageRecord,
    PostalAddress,
    RecurrenceRule,
    canonical,
)
from profiles.certificates import is_certificate

ACCESS = MailboxAccess(mailbox="alice@example.com", endpoint="https://graph.microsoft.com/v1.0",
                       auth=Auth.OAUTH2, tenant_id="contoso.onmicrosoft.com",
                       client_id="5b4f2a6e-1c3d-4e8f-9a0b-7c6d5e4f3a2b")

# Text as people type it (Czech included), without the control characters no server keeps.
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
               max_size=30).map(str.strip)
line = text.filter(lambda s: "\n" not in s)


def _as_server_stores(data: dict[str, Any]) -> dict[str, Any]:
    """What a server keeps of a written item: the JSON itself, extended properties listed."""
    return json.loads(json.dumps(data))


# --- contacts ---------------------------------------------------------------------------------
@st.composite
def contacts(draw: Any) -> ContactRecord:
    emails = draw(st.lists(st.emails(), max_size=3))
    # Graph keeps lists without slots: a second business phone only after a first.
    business = draw(st.lists(line.filter(bool), max_size=2))
    addresses = {name: PostalAddress(*(draw(line) for _ in range(5)))
                 for name in ("business_address", "home_address", "other_address")}
    return ContactRecord(
        title=draw(line), first_name=draw(line), middle_name=draw(line), last_name=draw(line),
        suffix=draw(line), display_name=draw(line.filter(bool)), company=draw(line),
        job_title=draw(line), department=draw(line), web_page=draw(line),
        email1=emails[0] if emails else "", email2=emails[1] if len(emails) > 1 else "",
        email3=emails[2] if len(emails) > 2 else "", **addresses,
        phone_business=business[0] if business else "",
        phone_business2=business[1] if len(business) > 1 else "",
        phone_home=draw(line), phone_mobile=draw(line), phone_business_fax=draw(line),
        phone_other=draw(line), note=draw(text), categories=tuple(draw(st.lists(
            line.filter(bool), max_size=3, unique=True))), stamp=draw(line))


@given(contacts())
@settings(max_examples=60, deadline=None)
def test_a_contact_round_trips_through_graph_json(record: ContactRecord) -> None:
    stored = _as_server_stores(m.contact_json(record))
    stored["id"] = "AAkALgx"
    back = m.contact_record(stored)
    assert canonical(back) == canonical(record)


def test_an_email_in_the_second_slot_alone_reads_back_in_the_first() -> None:
    # Graph keeps addresses as a list (documented in graph_mapping): nothing is lost.
    record = ContactRecord(display_name="X", email2="x@example.com")
    assert m.contact_record(_as_server_stores(m.contact_json(record))).email1 == "x@example.com"


def test_a_contact_update_sends_only_what_carries_the_changed_fields() -> None:
    record = ContactRecord(first_name="Jana", last_name="Nováková", job_title="Engineer",
                           phone_business_fax="+420 1", stamp="crm-1")
    assert m.contact_json(record, {"job_title"}) == {"jobTitle": "Engineer"}
    assert m.contact_json(record, {"last_name"}) == {"surname": "Nováková",
                                                     "fileAs": "Nováková, Jana"}
    fax = m.contact_json(record, {"phone_business_fax"})
    assert fax == {"singleValueExtendedProperties": [
        {"id": m.BUSINESS_FAX_PROPERTY, "value": "+420 1"}]}
    # A field Graph does not hold is not sent at all.
    assert m.contact_json(record, {"photo_token"}) == {}


def test_extended_properties_are_matched_whatever_the_case_graph_answers_in() -> None:
    item = {"id": "x", "singleValueExtendedProperties": [
        {"id": m.STAMP_PROPERTY.upper(), "value": "crm-7"},
        {"id": "String 0x3a45", "value": "Ing."}]}
    record = m.contact_record(item)
    assert (record.stamp, record.title) == ("crm-7", "Ing.")


# --- events -------------------------------------------------------------------------------------
ZONES = ("Europe/Prague", "America/New_York", "UTC", "Asia/Tokyo")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@st.composite
def rules(draw: Any) -> RecurrenceRule:
    pattern = draw(st.sampled_from(sorted(m.PATTERNS)))
    start = draw(st.dates(dt.date(2025, 1, 1), dt.date(2035, 1, 1)))
    count = draw(st.none() | st.integers(1, 50))
    end = None if count else draw(st.none() | st.just(start + dt.timedelta(days=90)))
    values: dict[str, Any] = {"start": start, "count": count, "end": end}
    yearly = pattern.endswith("yearly")
    interval = 1 if yearly else draw(st.integers(1, 5))
    if pattern == "weekly":
        values["weekdays"] = tuple(draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1,
                                                 max_size=3, unique=True)))
        values["first_day_of_week"] = draw(st.sampled_from(WEEKDAYS))
    if pattern.startswith("relative"):
        values["weekdays"] = (draw(st.sampled_from((*WEEKDAYS, "Weekday", "WeekendDay",
                                                   "Day"))),)
        values["week_index"] = draw(st.sampled_from(m.WEEK_INDEXES))
    if pattern.startswith("absolute_"):
        values["day_of_month"] = draw(st.integers(1, 28))
    if yearly:
        values["month"] = draw(st.integers(1, 12))
    return RecurrenceRule(pattern, interval, **values)


@st.composite
def events(draw: Any) -> EventRecord:
    zone = draw(st.sampled_from(ZONES))
    all_day = draw(st.booleans())
    day = draw(st.dates(dt.date(2025, 1, 1), dt.date(2035, 1, 1)))
    from zoneinfo import ZoneInfo
    if all_day:
        start = dt.datetime.combine(day, dt.time(), ZoneInfo(zone))
        end = start + dt.timedelta(days=draw(st.integers(1, 3)))
    else:
        start = dt.datetime.combine(day, dt.time(draw(st.integers(0, 22)),
                                                 draw(st.sampled_from((0, 15, 30)))),
                                    ZoneInfo(zone))
        end = start + dt.timedelta(minutes=draw(st.integers(0, 600)))
    attendees = tuple(Attendee(e, draw(line), draw(st.booleans()))
                      for e in draw(st.lists(st.emails(), max_size=3, unique=True)))
    return EventRecord(
        subject=draw(line), start=start.astimezone(dt.UTC), end=end.astimezone(dt.UTC),
        time_zone=zone, all_day=all_day, location=draw(line), body=draw(text),
        private=draw(st.booleans()), categories=tuple(draw(st.lists(line.filter(bool),
                                                                      max_size=2, unique=True))),
        attendees=tuple(dataclasses.replace(a, email=a.email.lower()) for a in attendees),
        recurrence=draw(st.none() | rules()), stamp=draw(line))


def _as_graph_answers(data: dict[str, Any]) -> dict[str, Any]:
    """A written event as Graph reads it back with `Prefer: outlook.timezone="UTC"`: times
    in UTC, the zone it was written in as originalStartTimeZone, and its type."""
    stored = _as_server_stores(data)
    zone = stored["start"]["timeZone"]
    from zoneinfo import ZoneInfo
    for key in ("start", "end"):
        local = dt.datetime.fromisoformat(stored[key]["dateTime"]).replace(tzinfo=ZoneInfo(zone))
        stored[key] = {"dateTime": local.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
                       + ".0000000", "timeZone": "UTC"}
    stored.update(originalStartTimeZone=zone, id="AAkALgy",
                  type="seriesMaster" if stored.get("recurrence") else "singleInstance")
    return stored


@given(events())
@settings(max_examples=80, deadline=None)
def test_an_event_round_trips_through_graph_json(record: EventRecord) -> None:
    back = m.event_record(_as_graph_answers(m.event_json(record, "Europe/Prague")))
    assert canonical(back) == canonical(record)
    assert back.kind == ("master" if record.recurrence else "single")


@given(rules())
@settings(max_examples=100, deadline=None)
def test_a_recurrence_round_trips_through_patterned_recurrence(rule: RecurrenceRule) -> None:
    stored = _as_server_stores(m.recurrence_json(rule, "Europe/Prague"))
    back = m.recurrence_rule(stored)
    expected = rule if rule.pattern == "weekly" else dataclasses.replace(
        rule, first_day_of_week="Monday")
    assert back == expected


def test_an_event_graph_cannot_hold_is_refused_with_a_reason() -> None:
    start = dt.datetime(2030, 3, 5, 9, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="start and an end"):
        m.event_json(EventRecord(subject="x", start=start), "Europe/Prague")
    with pytest.raises(ValueError, match="ends before it starts"):
        m.event_json(EventRecord(subject="x", start=start, end=start - dt.timedelta(hours=1)),
                     "Europe/Prague")
    with pytest.raises(ValueError, match="time zone"):
        m.event_json(EventRecord(subject="x", start=start, end=start, time_zone="Mars/Olympus"),
                     "Europe/Prague")


def test_a_windows_zone_name_reads_as_the_users_own_city() -> None:
    item = {"id": "x", "subject": "Standup", "originalStartTimeZone":
            "Central Europe Standard Time",
            "start": {"dateTime": "2030-03-05T08:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2030-03-05T08:30:00.0000000", "timeZone": "UTC"}}
    assert m.event_record(item, "Europe/Prague").time_zone == "Europe/Prague"
    assert m.event_record(item, "").time_zone == "Europe/Budapest"
    unknown = m.event_record({**item, "originalStartTimeZone": "Atlantis Standard Time"})
    assert unknown.time_zone == "" and "Atlantis" in unknown.time_zone_problem
    assert unknown.start == dt.datetime(2030, 3, 5, 8, tzinfo=dt.UTC)   # kept in UTC


# --- messages -----------------------------------------------------------------------------------
def test_a_message_reads_addresses_bodies_and_attachments() -> None:
    item = {
        "id": "m1", "changeKey": "ck", "internetMessageId": "<a@example.com>",
        "subject": "Report",
        "from": {"emailAddress": {"name": "Bob", "address": "Bob@Example.com"}},
        "toRecipients": [{"emailAddress": {"name": "Alice", "address": "alice@example.com"}},
                         {"emailAddress": {"name": "", "address": ""}}],
        "receivedDateTime": "2025-03-03T08:30:00Z",
        "body": {"contentType": "html", "content":
                 "<html><head><style>p {}</style></head><p>Hello,<br>the <b>report</b>.</p>"},
        "attachments": [
            {"@odata.type": "#microsoft.graph.fileAttachment", "id": "a1", "name": "r.pdf",
             "contentType": "application/pdf", "size": 3000, "isInline": False},
            {"@odata.type": "#microsoft.graph.itemAttachment", "id": "a2", "name": "Request",
             "size": 900}]}
    record = m.message_record(item)
    assert record.sender == Address("bob@example.com", "Bob")
    assert record.to == (Address("alice@example.com", "Alice"),)
    assert record.body_text == "Hello,\nthe report."
    assert "<b>report</b>" in record.body_html
    assert record.received == dt.datetime(2025, 3, 3, 8, 30, tzinfo=dt.UTC)
    assert [(a.ref, a.is_item) for a in record.attachments] == [("a1", False), ("a2", True)]


def test_a_message_written_round_trips_its_synced_fields() -> None:
    record = MessageRecord(subject="Follow-up", body_text="Call back\nplease",
                           categories=("CRM",), stamp="crm-message-1")
    back = m.message_record({"id": "x", **_as_server_stores(m.message_json(record))})
    assert (back.subject, back.body_text, back.categories, back.stamp) == \
        (record.subject, record.body_text, record.categories, record.stamp)
    assert m.message_json(record, {"categories"}) == {"categories": ["CRM"]}


@pytest.mark.parametrize(("value", "expected"), [
    ("2030-03-05T09:00:00Z", dt.datetime(2030, 3, 5, 9, tzinfo=dt.UTC)),
    ("2030-03-05T09:00:00.1234567", dt.datetime(2030, 3, 5, 9, 0, 0, 123456, tzinfo=dt.UTC)),
    ("2030-03-05T10:00:00+01:00", dt.datetime(2030, 3, 5, 9, tzinfo=dt.UTC)),
    ("", None), (None, None)])
def test_graph_timestamps_parse_to_aware_utc(value: str | None,
                                             expected: dt.datetime | None) -> None:
    assert m.parse_time(value) == expected


# --- Retry-After, budgets, batches --------------------------------------------------------------
def test_retry_after_takes_seconds_or_an_http_date_and_falls_back_otherwise() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("0.5") == 0.5
    assert retry_after("-3") == 0.0
    assert retry_after(None, default=2.0) == 2.0
    assert retry_after("soon", default=2.0) == 2.0
    now = 1_900_000_000.0
    assert retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_a_wait_beyond_the_budget_is_throttled_without_sleeping() -> None:
    budget = Budget(1.0)
    with pytest.raises(Throttled, match="longer than this run may wait"):
        budget.wait(3600, "graph.microsoft.com")
    budget.wait(0, "graph.microsoft.com")   # within it: goes on


@given(st.integers(0, 95))
def test_batches_hold_at_most_twenty_requests_in_order(count: int) -> None:
    items = list(range(count))
    chunks = [list(c) for c in chunked(items)]
    assert all(1 <= len(c) <= 20 for c in chunks)
    assert [i for c in chunks for i in c] == items


def test_batch_answers_map_back_to_their_requests_in_order() -> None:
    requests = [BatchRequest("GET", f"/users/a/contacts/{i}") for i in range(3)]
    payload = batch_payload(requests, 'IdType="ImmutableId"')
    assert [r["id"] for r in payload["requests"]] == ["0", "1", "2"]
    assert payload["requests"][0]["headers"]["Prefer"] == 'IdType="ImmutableId"'
    answer = {"responses": [
        {"id": "2", "status": 404, "body": {"error": {"code": "ErrorItemNotFound"}}},
        {"id": "0", "status": 200, "body": {"id": "c0"}, "headers": {"Retry-After": "3"}}]}
    results = batch_results(answer, 3)
    assert [r.status for r in results] == [200, 500, 404]   # one not answered: its own error
    assert results[0].headers == {"retry-after": "3"}
    assert results[2].error().code == "ErrorItemNotFound"


def test_a_batched_write_carries_its_body_as_json() -> None:
    payload = batch_payload([BatchRequest("PATCH", "/users/a/contacts/1", {"jobTitle": "CEO"},
                                          {"If-Match": "ck1"})], "p")
    (entry,) = payload["requests"]
    assert entry["body"] == {"jobTitle": "CEO"}
    assert entry["headers"] == {"Prefer": "p", "If-Match": "ck1",
                                "Content-Type": "application/json"}


# --- errors in words ------------------------------------------------------------------------
@pytest.mark.parametrize(("error", "kind", "words"), [
    (GraphError(401, "InvalidAuthenticationToken", "expired"), AuthenticationFailed, "token"),
    (GraphError(403, "ErrorAccessDenied", "Access is denied."), ImpersonationDenied,
     "admin consent"),
    (GraphError(404, "ErrorInvalidUser", "The requested user is invalid."), MailboxNotFound,
     "no mailbox alice@example.com"),
    (GraphError(404, "MailboxNotEnabledForRESTAPI", ""), MailboxNotFound, "licence"),
    (GraphError(503, "ServiceUnavailable", ""), Throttled, "slow down"),
    (GraphError(502, "BadGateway", "upstream"), ServiceUnavailable, "502"),
])
def test_graph_errors_become_the_backend_errors_of_ews(error: GraphError, kind: type,
                                                       words: str) -> None:
    translated = translate(error, ACCESS)
    assert type(translated) is kind
    assert words in translated.message


@pytest.mark.parametrize(("description", "words"), [
    ("AADSTS90002: Tenant 'contoso' not found.", "tenant 'contoso.onmicrosoft.com' does not"),
    ("AADSTS700016: Application with identifier 'x' was not found in the directory",
     "no application"),
    ("AADSTS7000215: Invalid client secret provided.", "client secret"),
    ("AADSTS700027: Client assertion failed signature validation.", "certificate"),
])
def test_token_endpoint_refusals_name_what_to_fix(description: str, words: str) -> None:
    problem = _token_problem(error_from(401, {"error": "invalid_client",
                                               "error_description": description}), ACCESS)
    assert isinstance(problem, AuthenticationFailed)
    assert words in problem.message


def test_a_missing_folder_is_folder_not_found() -> None:
    error = GraphError(404, "ErrorItemNotFound", "The specified folder could not be found.")
    assert isinstance(translate(error, ACCESS), FolderNotFound)


def test_a_certificate_secret_is_told_from_a_client_secret() -> None:
    pem = ("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
           "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n")
    assert is_certificate(pem) and not is_certificate("s3cr3t~value")
    assert client_credential("s3cr3t~value") == "s3cr3t~value"
    credential = client_credential(pem)
    assert isinstance(credential, dict)
    assert credential["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert credential["public_certificate"].endswith("-----END CERTIFICATE-----")
    with pytest.raises(AuthenticationFailed, match="no certificate"):
        client_credential(pem.split("-----BEGIN CERTIFICATE-----")[0])


# --- states -----------------------------------------------------------------------------------
def test_a_state_round_trips_and_foreign_ones_are_not_taken_for_it() -> None:
    state = _State("https://graph/delta?$deltatoken=x", ("2030-01-01T00:00:00Z",
                                                         "2031-01-01T00:00:00Z"),
                   {"master-1": "ck"}, ["abc"])
    assert _State.load(state.dump()) == state
    for foreign in ("", None, "bm90IGEgc3luYyBzdGF0ZQ==", "graph1:!!!", "graph1:e30="):
        assert _State.load(foreign) is None
