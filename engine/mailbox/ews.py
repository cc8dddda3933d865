"""Exchange Server over EWS, through exchangelib: the only module that imports exchangelib.

What it takes care of, beyond calling exchangelib (facts: exchangelib notes §0–§2):
- no discovery round trips: endpoint, auth type and version are always given;
- throttling is waited out up to a budget per run, HTTP 429 included, while HTTP 401 fails at
  once ("authentication failed") instead of being retried as throttling;
- cached protocols are dropped when a connection's settings change (exchangelib keeps the first
  configuration per endpoint and credentials for the life of the process);
- TLS verification can be turned off per connection, not per process;
- incremental reads are checkpointed page by page (exchangelib's `sync_items()` only hands out
  the state at the very end), and ask only for the fields the records need;
- writes go in batches with a result per item, never send invitations or cancellations, and
  report a stale ChangeKey as a conflict;
- watching: a group of impersonated mailboxes is read through one GetStreamingEvents request
  (one subscription per mailbox, affinity headers as Microsoft prescribes for such groups),
  and subscriptions Exchange forgot are made again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import html
import ipaddress
import logging
import os
import re
import threading
import time
import warnings
import weakref
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, BinaryIO, NamedTuple
from urllib.parse import urlsplit

from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    Account,
    Build,
    CalendarItem,
    Configuration,
    Contact,
    Credentials,
    EWSDate,
    EWSDateTime,
    EWSTimeZone,
    ExtendedProperty,
    FaultTolerance,
    FileAttachment,
    Identity,
    ItemAttachment,
    Message,
    OAuth2Credentials,
    Q,
    Version,
)
from exchangelib import Attendee as ExchangeAttendee
from exchangelib import Mailbox as ExchangeMailbox
from exchangelib import errors as ews_errors
from exchangelib.attachments import AttachmentId
from exchangelib.fields import FieldPath
from exchangelib.folders import Folder, FolderCollection
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress
from exchangelib.items import BulkCreateResult
from exchangelib.properties import (
    CalendarView,
    DistinguishedFolderId,
    FolderId,
    ItemId,
    OccurrenceItemId,
    UserConfigurationNameMNS,
)
from exchangelib.properties import Mailbox as MailboxProperty
from exchangelib.protocol import BaseProtocol, CachingProtocol
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NoEndPattern,
    NumberedPattern,
    Recurrence,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)
from exchangelib.restriction import Restriction
from exchangelib.services import (
    CreateItem,
    DeleteItem,
    FindFolder,
    FindItem,
    GetFolder,
    GetItem,
    GetStreamingEvents,
    GetUserConfiguration,
    MoveItem,
    SubscribeToStreaming,
    SyncFolderItems,
    Unsubscribe,
    UpdateItem,
)
from exchangelib.util import MNS, _get_retry_after

from engine.mailbox import category_list
from engine.mailbox.base import (
    BATCH_SIZE,
    Auth,
    AuthenticationFailed,
    Category,
    ChangePage,
    ChangeType,
    ConnectionRefused,
    DnsFailure,
    Fetched,
    FolderInfo,
    FolderNotFound,
    ImpersonationDenied,
    ItemChange,
    ItemError,
    ItemRef,
    KnownVersions,
    LeftOut,
    Located,
    MailboxAccess,
    MailboxBackend,
    MailboxError,
    MailboxNotFound,
    NetworkRefused,
    Pending,
    ServerInfo,
    ServiceUnavailable,
    Sought,
    Throttled,
    TimedOut,
    TlsFailure,
    Update,
    WatchReport,
    WatchTarget,
    WriteResult,
    WriteStatus,
    server_stream,
    status_words,
    tls_reason,
)
from engine.records import (
    Address,
    AttachmentInfo,
    Attendee,
    ContactRecord,
    EventRecord,
    Kind,
    MessageRecord,
    PostalAddress,
    Record,
    RecurrenceRule,
    exception_view,
)
from engine.recurrence import index_of
from security.outbound import AddressRefused, CheckedAdapter

log = logging.getLogger(__name__)

# --- identity stamps --------------------------------------------------------------------------
# A property set of the product's own (lower case: exchangelib compares it as sent).
STAMP_PROPERTY_SET = "b7c1e0d4-2f6a-4e83-9c5d-8a1f3e2b6c47"


class SyncStamp(ExtendedProperty):
    """The CRM key of the record an item is linked to (ARCHITECTURE §3, identity stamps)."""

    property_set_id = STAMP_PROPERTY_SET
    property_name = "CrmSyncKey"
    property_type = "String"


class DisplayNamePrefix(ExtendedProperty):
    """A contact's title ("Ing.", "Dr."): EWS has no writable field for it, MAPI does."""

    property_tag = 0x3A45
    property_type = "String"


class CleanGlobalObjectId(ExtendedProperty):
    """PidLidCleanGlobalObjectId: a meeting's identity in the mailbox, kept when the item moves
    (unlike its ItemId). Exchange derives it from the UID (MS-OXOCAL 2.2.1.28)."""

    distinguished_property_set_id = "Meeting"
    property_id = 0x23
    property_type = "Binary"


# MS-OXOCAL 2.2.1.27: an Outlook global object id starts with this class id; its UID is the
# id in hex. Any other UID (one from an iCalendar file) is wrapped as "vCal-Uid".
GOID_HEADER = bytes.fromhex("040000008200E00074C5B7101A82E008")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")


def clean_goid(uid: str) -> bytes:
    """The PidLidCleanGlobalObjectId of the meeting with this UID (its instance date zeroed)."""
    if _HEX.fullmatch(uid) and uid[:32].upper() == GOID_HEADER.hex().upper():
        goid = bytearray(bytes.fromhex(uid))
        goid[16:20] = b"\0\0\0\0"
        return bytes(goid)
    data = b"vCal-Uid\x01\x00\x00\x00" + uid.encode() + b"\x00"
    return GOID_HEADER + bytes(20) + len(data).to_bytes(4, "little") + data


def _sought_query(keys: Sequence[tuple[str, Any]]) -> Q:
    """A restriction matching any of these stamps and meeting global object ids."""
    stamps = [value for name, value in keys if name == "stamp"]
    goids = [value for name, value in keys if name == "goid"]
    if stamps and goids:
        return Q(sync_stamp__in=stamps) | Q(clean_global_object_id__in=goids)
    return Q(sync_stamp__in=stamps) if stamps else Q(clean_global_object_id__in=goids)


def _register(cls: type, name: str, prop: type) -> None:
    # Registration is process-wide and refuses a second registration under the same name.
    if name not in {f.name for f in cls.FIELDS}:
        cls.register(name, prop)


for _item_class in (Contact, CalendarItem, Message):
    _register(_item_class, "sync_stamp", SyncStamp)
_register(Contact, "title_prefix", DisplayNamePrefix)
_register(CalendarItem, "clean_global_object_id", CleanGlobalObjectId)

DEFAULT_VERSION = "Exchange2016"
VERSIONS = {"Exchange2013": Build(15, 0, 516, 32), "Exchange2013_SP1": Build(15, 0, 847, 32),
            "Exchange2016": Build(15, 1, 2507, 6)}
WINDOW_MAX_ITEMS = 1000   # Exchange refuses bigger calendar views (ErrorExceededFindCountLimit)
FIND_MAX_ITEMS = 1000     # ... and bigger FindItem pages
# A search for items gone from a synced folder (locate): folders per FindItem, and stamps or
# meeting ids per restriction.
FOLDERS_PER_SEARCH = 100
KEYS_PER_SEARCH = 100
WINDOW_MAX_DAYS = 700     # ... and ranges over two years (ErrorCalendarViewRangeTooBig)
# Mailboxes per streaming connection: Microsoft's affinity groups hold at most 200 ("Maintain
# affinity between a group of subscriptions and the Mailbox server").
WATCH_GROUP_SIZE = 200


# An unknown Windows zone id is reported on the item (time_zone_problem), not as a warning in
# the worker's log for every read. Set once for the process: catch_warnings() per call is not
# thread-safe, and reads run in a background thread too (_ReadAhead).
warnings.filterwarnings("ignore", message="Cannot convert value", category=UserWarning)


# --- retrying: throttling is waited out within a budget per run, 401 never -----------------
class _RunBudget(threading.local):
    deadline: float | None = None


_budget = _RunBudget()


class RetryPolicy(FaultTolerance):
    """FaultTolerance that fails fast on 401, retries 429, and waits at most a run's budget."""

    def raise_response_errors(self, response: Any) -> Any:
        if response.status_code == 401:
            raise ews_errors.UnauthorizedError(f"Invalid credentials for {response.url}")
        if response.status_code == 429:
            raise ews_errors.ErrorServerBusy("Caused by HTTP 429 response",
                                             back_off=_get_retry_after(response))
        try:
            return super().raise_response_errors(response)
        except (ews_errors.MalformedResponseError, ews_errors.CASError):
            # exchangelib writes the answer's headers and body (or a redirect's target) into
            # these; what an unknown server answered is never echoed into a page, a run or a
            # log: the status says enough (issue: an EWS URL pointed at another service).
            raise UnexpectedAnswer(response.status_code) from None

    def back_off(self, seconds: float | None) -> None:
        wait = self.DEFAULT_BACKOFF if seconds is None else seconds
        deadline = _budget.deadline
        if deadline is not None and time.monotonic() + wait > deadline:
            raise ews_errors.RateLimitError("Throttling budget of this run used up", wait=wait)
        super().back_off(seconds)


class UnexpectedAnswer(ews_errors.MalformedResponseError):
    """An HTTP answer that is no EWS answer, known by its status code alone."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(status_words(status))


# --- TLS verification per endpoint ----------------------------------------------------------
_unverified_endpoints: set[str] = set()


class _Traffic(threading.local):
    requests = 0


_traffic = _Traffic()


class _PerEndpointTlsAdapter(CheckedAdapter):
    """exchangelib picks one adapter class for the whole process (its token requests use it
    too); this one connects only where the outbound address policy allows
    (security/outbound.py), lets a connection whose administrator turned TLS verification off
    skip it, and only that connection, and counts the requests each thread sends, for the
    run's history."""

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if any(request.url.startswith(prefix) for prefix in _unverified_endpoints):
            kwargs["verify"] = False
        response = super().send(request, *args, **kwargs)
        # NTLM's handshake answers 401 twice before the real answer: count operations only.
        if response.status_code != 401 or "WWW-Authenticate" not in response.headers:
            _traffic.requests += 1
        return response


BaseProtocol.HTTP_ADAPTER_CLS = _PerEndpointTlsAdapter
BaseProtocol.TIMEOUT = 60


class _TokenUrlCredentials(OAuth2Credentials):
    """OAuth2 client credentials with an overridable token endpoint (exchangelib hard-codes
    Microsoft's), so a national cloud, a proxy or the simulator can be used."""

    def __init__(self, *args: Any, token_endpoint: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token_endpoint = token_endpoint

    @property
    def token_url(self) -> str:
        return self._token_endpoint or super().token_url

    def __hash__(self) -> int:
        return hash((super().__hash__(), self._token_endpoint))


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Settings version per protocol cache key: a changed connection drops the cached protocol.
_seen_settings: dict[tuple[str, Any], str] = {}
_seen_lock = threading.Lock()


def _credentials(access: MailboxAccess) -> Any:
    if access.auth is Auth.OAUTH2:
        if _is_loopback(access.endpoint) and _is_loopback(access.token_url or access.endpoint):
            # requests-oauthlib refuses plain http; allowed only for a server on this machine.
            os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
        return _TokenUrlCredentials(
            client_id=access.client_id, client_secret=access.secret, tenant_id=access.tenant_id,
            identity=Identity(primary_smtp_address=access.mailbox),
            token_endpoint=access.token_url)
    return Credentials(access.username, access.secret)


def _configuration(access: MailboxAccess) -> Configuration:
    credentials = _credentials(access)
    key = (access.endpoint, credentials)
    with _seen_lock:
        if _seen_settings.get(key, access.settings_version) != access.settings_version:
            _drop_cached_protocol(key)
        _seen_settings[key] = access.settings_version
    if access.verify_tls:
        _unverified_endpoints.discard(access.endpoint)
    else:
        _unverified_endpoints.add(access.endpoint)
    build = VERSIONS.get(access.server_version or DEFAULT_VERSION, VERSIONS[DEFAULT_VERSION])
    auth_type = {Auth.NTLM: NTLM, Auth.BASIC: BASIC, Auth.OAUTH2: OAUTH2}[access.auth]
    return Configuration(
        service_endpoint=access.endpoint, credentials=credentials, auth_type=auth_type,
        version=Version(build=build), max_connections=2,
        retry_policy=RetryPolicy(max_wait=access.throttle_budget_seconds))


def _drop_cached_protocol(key: tuple[str, Any]) -> None:
    with CachingProtocol._protocol_cache_lock:
        entry = CachingProtocol._protocol_cache.pop(key, None)
    if entry is not None and not isinstance(entry[0], Exception):
        entry[0].close()


# --- errors in plain words ------------------------------------------------------------------
def translate_error(exc: BaseException, access: MailboxAccess) -> MailboxError:
    """Turn whatever exchangelib or the network raised into a MailboxError a person can act on.

    Only our own words, the status code and local (TLS, socket) errors reach the message:
    exchangelib's texts may carry what the server answered (headers, body, a redirect's
    target), which is never echoed."""
    host = urlsplit(access.endpoint).hostname or access.endpoint
    text = str(exc)
    if isinstance(exc, MailboxError):
        return exc
    if isinstance(exc, AddressRefused):
        return NetworkRefused(exc.message)
    if isinstance(exc, ews_errors.UnauthorizedError) or "InvalidClientError" in type(exc).__name__:
        return AuthenticationFailed(
            f"Authentication failed: the server refused the user name or password of "
            f"{access.username or access.client_id!r}.")
    if isinstance(exc, ews_errors.ErrorImpersonateUserDenied):
        return ImpersonationDenied(
            f"The service account {access.username or access.client_id!r} may not impersonate "
            f"{access.mailbox}: grant it the ApplicationImpersonation role.")
    if isinstance(exc, ews_errors.ErrorNonExistentMailbox | ews_errors.ErrorMailboxStoreUnavailable
                  ) and "Unavailable" not in type(exc).__name__:
        return MailboxNotFound(f"There is no mailbox {access.mailbox} on {host}.")
    if isinstance(exc, ews_errors.ErrorFolderNotFound):
        return FolderNotFound("The folder no longer exists in the mailbox: choose it again.")
    if isinstance(exc, ews_errors.RateLimitError):
        return Throttled(f"{host} kept asking to slow down for longer than this run may wait "
                         f"({int(access.throttle_budget_seconds)} s); the next run goes on.")
    if isinstance(exc, ews_errors.ErrorServerBusy):
        return Throttled(f"{host} is busy and asked to slow down; the next run goes on.")
    if isinstance(exc, UnexpectedAnswer):
        return ServiceUnavailable(
            f"{host} does not answer as an Exchange Web Services endpoint (it answered {exc}; "
            "EWS disabled, or a wrong URL?).")
    if isinstance(exc, ews_errors.ResponseMessageError | ews_errors.SOAPError) and not \
            isinstance(exc, ews_errors.ErrorTimeoutExpired):   # exchangelib's network error
        # The class is the response code Exchange sent (exchangelib's fixed set); its text is
        # the server's own and stays out.
        return MailboxError(f"Exchange answered with the error {type(exc).__name__}.")
    if isinstance(exc, ews_errors.TransportError | ews_errors.ErrorTimeoutExpired | OSError):
        lowered = text.lower()
        if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
            return TlsFailure(f"The TLS connection to {host} failed{tls_reason(text)}. Check "
                              "the certificate, or turn TLS verification off for this "
                              "connection.")
        if ("name or service not known" in lowered or "nameresolution" in lowered
                or "getaddrinfo" in lowered or "nodename nor servname" in lowered):
            return DnsFailure(f"The server name {host} cannot be resolved (DNS).")
        if "refused" in lowered:
            return ConnectionRefused(f"{host} refused the connection: nothing listens on "
                                     f"port {urlsplit(access.endpoint).port or 443}.")
        if "timed out" in lowered or "timeout" in lowered or "read timed" in lowered:
            return TimedOut(f"{host} did not answer in time.")
        if isinstance(exc, ews_errors.ErrorTimeoutExpired):
            return TimedOut(f"The connection to {host} broke off before an answer came.")
    if isinstance(exc, ews_errors.RedirectError | ews_errors.MalformedResponseError):
        return ServiceUnavailable(
            f"{host} does not answer as an Exchange Web Services endpoint (EWS disabled, or a "
            "wrong URL?).")
    return MailboxError(f"The connection to {host} failed ({type(exc).__name__}).")


def _short(text: str, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit] + "…"


# --- services that give a result per item -------------------------------------------------
# Errors that concern the mailbox or the server, not one item: raised (and retried) as usual.
_MAILBOX_WIDE = (ews_errors.ErrorServerBusy, ews_errors.ErrorTimeoutExpired,
                 ews_errors.ErrorTooManyObjectsOpened, ews_errors.ErrorInternalServerTransientError,
                 ews_errors.ErrorMailboxStoreUnavailable, ews_errors.ErrorMailboxMoveInProgress,
                 ews_errors.ErrorImpersonateUserDenied, ews_errors.ErrorNonExistentMailbox,
                 ews_errors.ErrorExceededConnectionCount)


class _LoadedAnswer:
    """An answer already read into memory, handed to the XML parser in one piece."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    def iter_content(self) -> bytes:
        return self.content   # exchangelib's to_xml() parses bytes directly


class _WholeAnswer:
    """exchangelib parses every answer from `response.iter_content()`, whose default chunk
    is one byte: a Python call per byte, most of the client's time on a big GetItem answer
    (a first sync reads megabytes; bench/). The answers of these services are not streamed,
    so they are in memory already: parse them in one piece."""

    @classmethod
    def _get_soap_parts(cls, response: Any) -> Any:
        content = getattr(response, "content", None)
        if isinstance(content, bytes):
            response = _LoadedAnswer(content)
        return super()._get_soap_parts(response)  # type: ignore[misc]


@dataclasses.dataclass
class _SeriesOccurrences:
    """The occurrence writes of one series in a batch: `position` is its place in the batch."""

    position: int
    master: ItemRef
    changes: list[tuple[Any, list[str]]] = dataclasses.field(default_factory=list)
    doomed: list[Any] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)


class _ChangedId(NamedTuple):
    """An item of an IdOnly SyncFolderItems answer: all read_changes() asks of it."""

    id: str
    changekey: str | None


class _SyncFolderItems(_WholeAnswer, SyncFolderItems):
    def _elem_to_obj(self, elem: Any) -> Any:
        # An IdOnly change holds the item's id alone: read it straight from the element.
        # exchangelib builds a whole item of ~100 empty fields for each, a third of the
        # reading of a first calendar import (bench/calendar.py). Anything more (the receipt
        # time mail asks) goes the usual way.
        if self.change_types_map[elem.tag] in (self.CREATE, self.UPDATE) and len(elem) \
                and len(elem[0]) == 1 and elem[0][0].tag == ItemId.response_tag():
            return self.change_types_map[elem.tag], _ChangedId(
                elem[0][0].get("Id"), elem[0][0].get("ChangeKey"))
        return super()._elem_to_obj(elem)


class _PerItem(_WholeAnswer):
    ERRORS_TO_CATCH_IN_RESPONSE = ews_errors.ResponseMessageError

    def _get_element_container(self, message: Any, name: Any = None) -> Any:
        result = super()._get_element_container(message, name)  # type: ignore[misc]
        if isinstance(result, _MAILBOX_WIDE):
            raise result
        return result


class _CreateItem(_PerItem, CreateItem):
    pass


class _UpdateItem(_PerItem, UpdateItem):
    pass


class _DeleteItem(_PerItem, DeleteItem):
    pass


class _GetItem(_PerItem, GetItem):
    pass


class _MoveItem(_PerItem, MoveItem):
    pass


# --- field lists: only what the records need -------------------------------------------------
CONTACT_FIELDS = ("title_prefix", "given_name", "middle_name", "surname", "generation",
                  "display_name", "company_name", "job_title", "department", "business_homepage",
                  "email_addresses", "phone_numbers", "physical_addresses", "body", "categories",
                  "attachments", "sync_stamp", "last_modified_time")
EVENT_FIELDS = ("subject", "start", "end", "is_all_day", "location", "body", "sensitivity",
                "categories", "required_attendees", "optional_attendees", "organizer",
                "my_response_type", "is_cancelled", "uid", "recurrence", "modified_occurrences",
                "deleted_occurrences", "original_start", "type", "_start_timezone", "sync_stamp",
                "last_modified_time")
MESSAGE_FIELDS = ("message_id", "subject", "author", "sender", "to_recipients", "cc_recipients",
                  "bcc_recipients", "datetime_sent", "datetime_received", "body", "text_body",
                  "categories", "attachments", "sync_stamp")
FIELDS = {Kind.CONTACTS: CONTACT_FIELDS, Kind.CALENDAR: EVENT_FIELDS, Kind.MAIL: MESSAGE_FIELDS}
ITEM_CLASS = {Kind.CONTACTS: Contact, Kind.CALENDAR: CalendarItem, Kind.MAIL: Message}
FOLDER_CLASS_KIND = {"IPF.Appointment": Kind.CALENDAR, "IPF.Contact": Kind.CONTACTS,
                     "IPF.Note": Kind.MAIL}
DISTINGUISHED = {"calendar", "contacts", "inbox", "sentitems", "drafts", "deleteditems",
                 "msgfolderroot", "root", "junkemail", "outbox"}

PHONES = {"phone_business": "BusinessPhone", "phone_business2": "BusinessPhone2",
          "phone_home": "HomePhone", "phone_mobile": "MobilePhone",
          "phone_business_fax": "BusinessFax", "phone_other": "OtherTelephone"}
ADDRESSES = {"business_address": "Business", "home_address": "Home", "other_address": "Other"}
EMAILS = {"email1": "EmailAddress1", "email2": "EmailAddress2", "email3": "EmailAddress3"}
# record field -> the exchangelib field that carries it
CONTACT_FIELD_MAP = {
    "title": "title_prefix", "first_name": "given_name", "middle_name": "middle_name",
    "last_name": "surname", "suffix": "generation", "display_name": "display_name",
    "company": "company_name", "job_title": "job_title", "department": "department",
    "web_page": "business_homepage", "note": "body", "categories": "categories",
    **dict.fromkeys(EMAILS, "email_addresses"), **dict.fromkeys(PHONES, "phone_numbers"),
    **dict.fromkeys(ADDRESSES, "physical_addresses"), "stamp": "sync_stamp",
}
EVENT_FIELD_MAP = {
    "subject": "subject", "start": "start", "end": "end", "time_zone": "start",
    "all_day": "is_all_day", "location": "location", "body": "body", "private": "sensitivity",
    "categories": "categories", "attendees": "required_attendees", "recurrence": "recurrence",
    "stamp": "sync_stamp",
}
MESSAGE_FIELD_MAP = {"subject": "subject", "categories": "categories", "stamp": "sync_stamp"}
FIELD_MAP = {Kind.CONTACTS: CONTACT_FIELD_MAP, Kind.CALENDAR: EVENT_FIELD_MAP,
             Kind.MAIL: MESSAGE_FIELD_MAP}


# --- item -> record -------------------------------------------------------------------------
_TAG = re.compile(r"<[^>]+>")


def _text(body: Any) -> str:
    """Plain text of a body: HTML bodies (Outlook keeps notes as HTML) lose their markup."""
    if not body:
        return ""
    value = str(body)
    if type(body).__name__ == "HTMLBody" or value.lstrip().startswith("<"):
        value = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", value)
        value = html.unescape(_TAG.sub("", value))
        value = "\n".join(line.rstrip() for line in value.splitlines()).strip()
    return value.replace("\r\n", "\n")


def _utc(value: Any, zone: zoneinfo.ZoneInfo | None) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        # EWSDateTime.astimezone() takes only EWSTimeZones: go through the timestamp.
        return dt.datetime.fromtimestamp(value.timestamp(), dt.UTC)
    # All-day events come back as dates: midnight in the event's own zone.
    return dt.datetime.combine(value, dt.time(), zone or dt.UTC).astimezone(dt.UTC)


def _enum_name(names: Sequence[str], value: Any) -> str:
    return value if isinstance(value, str) else names[int(value) - 1]


WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
                 "Day", "Weekday", "WeekendDay")
WEEK_NUMBERS = ("First", "Second", "Third", "Fourth", "Last")


def _rule(recurrence: Recurrence | None) -> RecurrenceRule | None:
    if recurrence is None or recurrence.pattern is None:
        return None
    p, b = recurrence.pattern, recurrence.boundary
    start = getattr(b, "start", None)
    end = getattr(b, "end", None)
    common: dict[str, Any] = {
        "start": _plain_date(start), "end": _plain_date(end),
        "count": getattr(b, "number", None),
    }
    if isinstance(p, DailyPattern):
        return RecurrenceRule("daily", p.interval, **common)
    if isinstance(p, WeeklyPattern):
        days = p.weekdays if isinstance(p.weekdays, list | tuple) else [p.weekdays]
        return RecurrenceRule("weekly", p.interval,
                              weekdays=tuple(_enum_name(WEEKDAY_NAMES, d) for d in days),
                              first_day_of_week=_enum_name(WEEKDAY_NAMES, p.first_day_of_week or 1),
                              **common)
    if isinstance(p, AbsoluteMonthlyPattern):
        return RecurrenceRule("absolute_monthly", p.interval, day_of_month=p.day_of_month,
                              **common)
    if isinstance(p, RelativeMonthlyPattern):
        return RecurrenceRule("relative_monthly", p.interval,
                              weekdays=(_enum_name(WEEKDAY_NAMES, p.weekday),),
                              week_index=_enum_name(WEEK_NUMBERS, p.week_number), **common)
    if isinstance(p, AbsoluteYearlyPattern):
        return RecurrenceRule("absolute_yearly", 1, day_of_month=p.day_of_month,
                              month=_month(p.month), **common)
    if isinstance(p, RelativeYearlyPattern):
        return RecurrenceRule("relative_yearly", 1,
                              weekdays=(_enum_name(WEEKDAY_NAMES, p.weekday),),
                              week_index=_enum_name(WEEK_NUMBERS, p.week_number),
                              month=_month(p.month), **common)
    return None


def _plain_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return dt.date(value.year, value.month, value.day) if isinstance(value, dt.date) else None


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def _month(value: Any) -> int:
    return MONTHS.index(value) + 1 if isinstance(value, str) else int(value)


def _recurrence(rule: RecurrenceRule) -> Recurrence:
    pattern: Any
    if rule.pattern == "daily":
        pattern = DailyPattern(interval=rule.interval)
    elif rule.pattern == "weekly":
        pattern = WeeklyPattern(interval=rule.interval, weekdays=list(rule.weekdays),
                                first_day_of_week=rule.first_day_of_week)
    elif rule.pattern == "absolute_monthly":
        pattern = AbsoluteMonthlyPattern(interval=rule.interval, day_of_month=rule.day_of_month)
    elif rule.pattern == "relative_monthly":
        pattern = RelativeMonthlyPattern(interval=rule.interval, weekday=rule.weekdays[0],
                                         week_number=rule.week_index)
    elif rule.pattern == "absolute_yearly":
        pattern = AbsoluteYearlyPattern(day_of_month=rule.day_of_month,
                                        month=MONTHS[(rule.month or 1) - 1])
    elif rule.pattern == "relative_yearly":
        pattern = RelativeYearlyPattern(weekday=rule.weekdays[0], week_number=rule.week_index,
                                        month=MONTHS[(rule.month or 1) - 1])
    else:
        raise ValueError(f"unknown recurrence pattern {rule.pattern!r}")
    start = EWSDate.from_date(rule.start) if rule.start else None
    boundary: Any
    if rule.count:
        boundary = NumberedPattern(start=start, number=rule.count)
    elif rule.end:
        boundary = EndDatePattern(start=start, end=EWSDate.from_date(rule.end))
    else:
        boundary = NoEndPattern(start=start)
    return Recurrence(pattern=pattern, boundary=boundary)


def contact_record(item: Contact) -> ContactRecord:
    emails = {e.label: e.email for e in item.email_addresses or [] if e.email}
    phones = {p.label: p.phone_number for p in item.phone_numbers or [] if p.phone_number}
    addresses = {a.label: PostalAddress(a.street or "", a.city or "", a.state or "",
                                        a.zipcode or "", a.country or "")
                 for a in item.physical_addresses or []}
    photo = next((a.attachment_id.id for a in item.attachments or []
                  if isinstance(a, FileAttachment) and a.is_contact_photo), "")
    return ContactRecord(
        title=item.title_prefix or "", first_name=item.given_name or "",
        middle_name=item.middle_name or "", last_name=item.surname or "",
        suffix=item.generation or "", display_name=item.display_name or "",
        company=item.company_name or "", job_title=item.job_title or "",
        department=item.department or "", web_page=item.business_homepage or "",
        **{field: emails.get(label, "") for field, label in EMAILS.items()},
        **{field: addresses.get(label, PostalAddress()) for field, label in ADDRESSES.items()},
        **{field: phones.get(label, "") for field, label in PHONES.items()},
        note=_text(item.body), categories=tuple(item.categories or ()), photo_token=photo,
        stamp=item.sync_stamp or "", modified=_utc(item.last_modified_time, None))


def _attendees(item: CalendarItem) -> tuple[Attendee, ...]:
    out = []
    for required, group in ((True, item.required_attendees), (False, item.optional_attendees)):
        for attendee in group or []:
            mailbox = attendee.mailbox
            if mailbox is not None and mailbox.email_address:
                out.append(Attendee(mailbox.email_address.lower(), mailbox.name or "", required))
    return tuple(out)


# MyResponseType: the mailbox's own answer to the meeting (records.EventRecord.response).
RESPONSES = {"Organizer": "organizer", "Accept": "accepted", "Tentative": "tentative",
             "Decline": "declined", "NoResponseReceived": "none"}
KINDS_OF_EVENT = {"Single": "single", "RecurringMaster": "master", "Occurrence": "occurrence",
                  "Exception": "exception"}


def event_record(item: CalendarItem, home_zone: str = "") -> EventRecord:
    zone = item._start_timezone
    zone_info: zoneinfo.ZoneInfo | None = None
    problem = ""
    if zone is not None:
        try:
            # Windows names one zone for several cities ("Central Europe Standard Time" is
            # Prague and Budapest); the user's own city reads better than the canonical one.
            same_as_home = home_zone and EWSTimeZone(home_zone).ms_id == zone.ms_id
            zone_info = zoneinfo.ZoneInfo(home_zone if same_as_home else zone.key)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problem = f"unknown time zone {zone.key!r}"
    elif item.start is not None:
        problem = "the server named a time zone that has no known equivalent; kept in UTC"
    return EventRecord(
        subject=item.subject or "", start=_utc(item.start, zone_info),
        end=_utc(item.end, zone_info), time_zone=zone_info.key if zone_info else "",
        all_day=bool(item.is_all_day), location=item.location or "", body=_text(item.body),
        private=item.sensitivity in ("Private", "Confidential"),
        categories=tuple(item.categories or ()), attendees=_attendees(item),
        organizer=(item.organizer.email_address or "").lower() if item.organizer else "",
        response=RESPONSES.get(item.my_response_type or "", ""),
        cancelled=bool(item.is_cancelled), uid=item.uid or "", recurrence=_rule(item.recurrence),
        deleted_occurrences=tuple(_utc(d.start, None) for d in item.deleted_occurrences or []
                                  if d.start is not None),
        original_start=_utc(item.original_start, None),
        kind=KINDS_OF_EVENT.get(item.type or "Single", "single"), time_zone_problem=problem,
        stamp=item.sync_stamp or "", modified=_utc(item.last_modified_time, None))


def _address(mailbox: Any) -> Address | None:
    if mailbox is None or not mailbox.email_address:
        return None
    return Address(mailbox.email_address.lower(), mailbox.name or "")


def _addresses(mailboxes: Any) -> tuple[Address, ...]:
    return tuple(a for a in (_address(m) for m in mailboxes or []) if a is not None)


def message_record(item: Message) -> MessageRecord:
    body_html = str(item.body) if type(item.body).__name__ == "HTMLBody" else ""
    attachments = tuple(
        AttachmentInfo(ref=a.attachment_id.id, name=a.name or "", content_type=a.content_type or "",
                       size=a.size or 0, is_inline=bool(a.is_inline),
                       is_item=isinstance(a, ItemAttachment))
        for a in item.attachments or [] if a.attachment_id is not None)
    return MessageRecord(
        message_id=item.message_id or "", subject=item.subject or "",
        sender=_address(item.author) or _address(item.sender), to=_addresses(item.to_recipients),
        cc=_addresses(item.cc_recipients), bcc=_addresses(item.bcc_recipients),
        sent=_utc(item.datetime_sent, None), received=_utc(item.datetime_received, None),
        body_text=_text(item.text_body) if item.text_body else _text(item.body),
        body_html=body_html, categories=tuple(item.categories or ()), attachments=attachments,
        stamp=item.sync_stamp or "")


def to_record(item: Any, home_zone: str = "") -> Record | None:
    if isinstance(item, Contact):
        return contact_record(item)
    if isinstance(item, CalendarItem):
        return event_record(item, home_zone)
    if isinstance(item, Message):
        return message_record(item)
    return None


# --- record -> item fields ------------------------------------------------------------------
def _contact_values(record: ContactRecord) -> dict[str, Any]:
    return {
        "title_prefix": record.title or None, "given_name": record.first_name or None,
        "middle_name": record.middle_name or None, "surname": record.last_name or None,
        "generation": record.suffix or None,
        "display_name": record.shown_name() or "(no name)",
        "company_name": record.company or None, "job_title": record.job_title or None,
        "department": record.department or None, "business_homepage": record.web_page or None,
        "email_addresses": [EmailAddress(label=label, email=getattr(record, field))
                            for field, label in EMAILS.items() if getattr(record, field)] or None,
        "phone_numbers": [PhoneNumber(label=label, phone_number=getattr(record, field))
                          for field, label in PHONES.items() if getattr(record, field)] or None,
        "physical_addresses": [
            PhysicalAddress(label=label, street=a.street or None, city=a.city or None,
                            state=a.region or None, zipcode=a.postal_code or None,
                            country=a.country or None)
            for field, label in ADDRESSES.items() if (a := getattr(record, field))] or None,
        "body": record.note or None, "categories": list(record.categories) or None,
        "file_as": ", ".join(p for p in (record.last_name, record.first_name) if p) or None,
        "sync_stamp": record.stamp or None,
    }


def _as_ews_utc(value: dt.datetime) -> EWSDateTime:
    return EWSDateTime.from_datetime(value.astimezone(dt.UTC).replace(microsecond=0)
                                     ).astimezone(EWSTimeZone("UTC"))


def _local(value: dt.datetime, zone: EWSTimeZone) -> EWSDateTime:
    local = value.replace(microsecond=0).astimezone(zone)
    return local if isinstance(local, EWSDateTime) else EWSDateTime.from_datetime(local)


def _event_values(record: EventRecord, default_zone: str) -> dict[str, Any]:
    zone = EWSTimeZone(record.time_zone or default_zone)
    if record.start is None or record.end is None:
        raise ValueError("an event needs a start and an end")
    if record.end < record.start:
        raise ValueError("the event ends before it starts")
    start: Any = _local(record.start, zone)
    end: Any = _local(record.end, zone)
    if record.all_day:
        # EWSDateTime.date() is an EWSDate already (from_date() refuses one).
        start, end = start.date(), end.date()
    def attendee(a: Attendee) -> ExchangeAttendee:
        return ExchangeAttendee(mailbox=ExchangeMailbox(email_address=a.email, name=a.name or None),
                                response_type="Unknown")

    required = [attendee(a) for a in record.attendees if a.required]
    optional = [attendee(a) for a in record.attendees if not a.required]
    values: dict[str, Any] = {
        "subject": record.subject, "start": start, "end": end, "is_all_day": record.all_day,
        "location": record.location or None, "body": record.body or None,
        "sensitivity": "Private" if record.private else "Normal",
        "categories": list(record.categories) or None,
        "required_attendees": required or None, "optional_attendees": optional or None,
        "recurrence": _recurrence(record.recurrence) if record.recurrence else None,
        "sync_stamp": record.stamp or None,
    }
    if record.uid:
        values["uid"] = record.uid
    return values


def _message_values(record: MessageRecord) -> dict[str, Any]:
    return {"subject": record.subject, "body": record.body_text or None,
            "categories": list(record.categories) or None, "sync_stamp": record.stamp or None,
            "to_recipients": [a.email for a in record.to] or None}


# --- the backend ----------------------------------------------------------------------------
class EwsMailbox(MailboxBackend):
    watch_group_size = WATCH_GROUP_SIZE

    def __init__(self, access: MailboxAccess) -> None:
        super().__init__(access)
        self._account: Account | None = None
        self._writer: _Worker | None = None
        self._watch_group: _WatchGroup | None = None
        self._folders: dict[str, tuple[str, bool]] | None = None   # _mailbox_folders
        self._requests_before = _traffic.requests
        _budget.deadline = time.monotonic() + access.throttle_budget_seconds

    # plumbing
    @property
    def account(self) -> Account:
        if self._account is None:
            access = self.access
            try:
                config = _configuration(access)
            except Exception as exc:
                raise translate_error(exc, access) from exc
            self._account = Account(
                access.mailbox, config=config, autodiscover=False,
                access_type=IMPERSONATION if access.impersonate else DELEGATE,
                default_timezone=EWSTimeZone(access.time_zone), locale="en_US")
        return self._account

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._watch_group is not None:
            self._watch_group.close()
            self._watch_group = None
        _budget.deadline = None
        self._account = None

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except MailboxError:
            raise
        except Exception as exc:
            raise translate_error(exc, self.access) from exc

    def _folder(self, folder: FolderInfo | str) -> Folder:
        """A folder object for item requests, built from the stored id without asking the
        server (so a read with no changes costs one request)."""
        folder_id = folder.id if isinstance(folder, FolderInfo) else folder
        return _IdFolder(self.account, self._folder_id(folder_id))

    def _folder_id(self, folder_id: str) -> FolderId:
        if folder_id in DISTINGUISHED:
            return DistinguishedFolderId(
                id=folder_id, mailbox=MailboxProperty(email_address=self.access.mailbox))
        return FolderId(id=folder_id)

    def _describe(self, folder_id: str) -> dict[str, Any]:
        """One GetFolder: the folder's name, class and size, read straight from the answer."""
        with self._errors():
            (answer,) = list(_RawGetFolder(account=self.account).call(
                folders=[self._folder_id(folder_id)], additional_fields=_FOLDER_FIELDS,
                shape="IdOnly"))
        if isinstance(answer, ews_errors.ErrorFolderNotFound | ews_errors.ErrorInvalidIdMalformed
                      | ews_errors.ErrorItemNotFound):
            raise FolderNotFound("The folder no longer exists in the mailbox: choose it again.")
        if isinstance(answer, Exception):
            raise translate_error(answer, self.access)
        # Ids (FolderId, ParentFolderId) are attributes, names and counts are text.
        return {local_name(child): child.text or child.get("Id") for child in answer.iter()
                if isinstance(child.tag, str)}

    def check(self) -> ServerInfo:
        # Opening the mailbox's top folder proves sign-in, impersonation and the mailbox.
        self._describe("msgfolderroot")
        version = self.account.version
        return ServerInfo(version=f"{version.api_version} ({version.build})",
                          mailbox=self.access.mailbox)

    def list_folders(self, kind: Kind) -> list[FolderInfo]:
        with self._errors():
            top = self.account.msg_folder_root
            found = list(FolderCollection(account=self.account, folders=[top]).find_folders(
                depth="Deep"))
        by_id = {f.id: f for f in found}
        paths: dict[str, str] = {}

        def path(folder: Any) -> str:
            if folder.id not in paths:
                parent = by_id.get(folder.parent_folder_id.id if folder.parent_folder_id else "")
                prefix = path(parent) + "/" if parent is not None else ""
                paths[folder.id] = prefix + (folder.name or "")
            return paths[folder.id]

        result = []
        for folder in found:
            folder_kind = FOLDER_CLASS_KIND.get(_base_class(folder.folder_class))
            if folder_kind is kind:
                result.append(FolderInfo(
                    id=folder.id, path=path(folder), kind=folder_kind,
                    parent_id=folder.parent_folder_id.id if folder.parent_folder_id else "",
                    total=folder.total_count))
        return sorted(result, key=lambda f: f.path.lower())

    def get_folder(self, folder_id: str, kind: Kind) -> FolderInfo:
        described = self._describe(folder_id)
        name = described.get("DisplayName") or folder_id
        folder_kind = FOLDER_CLASS_KIND.get(_base_class(described.get("FolderClass")))
        if folder_kind is not kind:
            raise FolderNotFound(f"The folder {name!r} does not hold {kind.value}.")
        total = described.get("TotalCount")
        return FolderInfo(id=folder_id, path=self._path(described), kind=folder_kind,
                          parent_id=described.get("ParentFolderId") or "",
                          total=int(total) if total and total.isdigit() else None)

    def count_items(self, folder: FolderInfo) -> int | None:
        total = self._describe(folder.id).get("TotalCount")
        return int(total) if total and total.isdigit() else None

    def _path(self, described: dict[str, Any]) -> str:
        """The display path from the top of the mailbox ("Contacts/CRM"), as list_folders
        gives it: one GetFolder per level, since a profile stores only the folder's id."""
        top = self._describe("msgfolderroot").get("FolderId")
        names = [described.get("DisplayName") or ""]
        parent = described.get("ParentFolderId")
        while parent and parent != top and len(names) < 64:
            above = self._describe(parent)
            names.append(above.get("DisplayName") or "")
            parent = above.get("ParentFolderId")
        return "/".join(reversed(names))

    def categories(self) -> list[Category]:
        """Outlook keeps the master category list in the default calendar's "CategoryList"
        configuration (one GetUserConfiguration, XmlData only). A mailbox whose list Outlook
        never saved has no such configuration: Exchange answers ErrorItemNotFound."""
        name = UserConfigurationNameMNS(name="CategoryList", folder=self._folder_id("calendar"))
        try:
            with self._errors():
                answer = GetUserConfiguration(account=self.account).get(
                    user_configuration_name=name, properties="XmlData")
        except MailboxError as exc:
            if isinstance(exc.__cause__, ews_errors.ErrorItemNotFound):
                return []
            raise
        if not answer.xml_data:
            return []
        try:
            return category_list.parse(answer.xml_data)
        except category_list.CategoryListUnreadable as exc:
            raise MailboxError("The mailbox's category list is damaged and cannot be read; "
                               "Outlook rewrites it when a category is added or changed.") \
                from exc

    # reading
    def read_changes(self, folder: FolderInfo, state: str | None,
                     page_size: int = BATCH_SIZE, known: KnownVersions | None = None,
                     received_after: dt.datetime | None = None) -> Iterator[ChangePage]:
        """Pages of changes, read one page ahead: while the caller works on a page (database
        writes), the next page's items are being fetched in a background thread, so the
        Exchange round trips and the caller's work overlap instead of adding up. Only the
        fetch runs there; `known` (a database query) is always asked from the caller's
        thread."""
        restarted = False
        # Mail older than the import window is never fetched: the sync asks each change's
        # receipt time and subject (cheap properties) and only newer mail is read in full.
        cheap = {FieldPath(field=Message.get_field_by_fieldname(name))
                 for name in ("datetime_received", "subject")} \
            if received_after is not None else set()
        ahead = _Worker(self, "ews-read-ahead")
        try:
            pending: _ListedPage | None = None
            while True:
                try:
                    listed = self._list_changes(folder, state, page_size, cheap, known,
                                                received_after)
                except _SyncStateRefused:
                    log.warning("Sync state of %s refused; reading %s from scratch",
                                self.access.mailbox, folder.path)
                    state, restarted, pending = None, True, None
                    ahead.discard()
                    continue
                listed.restarted, restarted = restarted, False
                kind, refs = folder.kind, listed.to_fetch
                fetching = ahead.submit(lambda kind=kind, refs=refs: self.fetch(kind, refs)) \
                    if kind is not None and refs else None
                if pending is not None:
                    yield pending.page()
                pending = _ListedPage(listed, fetching)
                state = listed.state
                if listed.done:
                    yield pending.page()
                    return
        finally:
            ahead.close()

    def _list_changes(self, folder: FolderInfo, state: str | None, page_size: int,
                      cheap: set[Any], known: KnownVersions | None,
                      received_after: dt.datetime | None) -> _Listed:
        """One SyncFolderItems page: its deletions, the items whose version is known already,
        and the items still to fetch."""
        service = _SyncFolderItems(account=self.account)
        try:
            with self._errors():
                raw = list(service.call(
                    folder=self._folder(folder), shape="IdOnly", additional_fields=cheap,
                    sync_state=state, ignore=None, max_changes_returned=page_size,
                    sync_scope="NormalItems"))
        except MailboxError as exc:
            if isinstance(exc.__cause__, ews_errors.ErrorInvalidSyncStateData) and state:
                raise _SyncStateRefused from exc
            raise
        upserts: dict[str, ItemRef] = {}
        left_out: dict[str, LeftOut] = {}
        changes: list[ItemChange] = []
        for change_type, obj in raw:
            if change_type in ("create", "update"):
                ref = ItemRef(obj.id, obj.changekey or "")
                received = getattr(obj, "datetime_received", None)
                if received_after is not None and received is not None and \
                        _utc(received, None) < received_after:
                    left_out[obj.id] = LeftOut(ref, getattr(obj, "subject", None) or "",
                                               _utc(received, None))
                    continue
                upserts[obj.id] = ref
            elif change_type == "delete":
                upserts.pop(obj.id, None)
                left_out.pop(obj.id, None)
                changes.append(ItemChange(ChangeType.DELETE, ItemRef(obj.id)))
        already = known(list(upserts.values())) if known and upserts else set()
        for item_id in already:
            changes.append(ItemChange(ChangeType.UPSERT, upserts.pop(item_id)))
        return _Listed(changes, list(upserts.values()) if folder.kind is not None else [],
                       service.sync_state, bool(service.includes_last_item_in_range),
                       left_out=list(left_out.values()))

    def fetch(self, kind: Kind, refs: Sequence[ItemRef]) -> list[Fetched]:
        out: list[Fetched] = []
        fields = _field_paths(kind)
        modified: dict[str, list[str]] = {}   # master id -> its exceptions' ids
        for start in range(0, len(refs), BATCH_SIZE):
            chunk = refs[start:start + BATCH_SIZE]
            with self._errors():
                results = list(_GetItem(account=self.account, chunk_size=BATCH_SIZE).call(
                    items=[ItemId(r.id) for r in chunk], additional_fields=fields,
                    shape="IdOnly"))
            for ref, item in zip(chunk, results, strict=False):
                out.append(self._converted(ref, item))
                if isinstance(item, CalendarItem) and item.modified_occurrences:
                    modified[item.id] = [o.id for o in item.modified_occurrences]
        if modified:
            self._attach_exceptions(out, modified)
        return out

    def _attach_exceptions(self, fetched: list[Fetched], modified: dict[str, list[str]]) -> None:
        """A series is one record with its exceptions: read them all in batches."""
        wanted = [ItemRef(i) for ids in modified.values() for i in ids]
        exceptions: dict[str, EventRecord] = {}
        for result in self.fetch(Kind.CALENDAR, wanted):
            if not isinstance(result, ItemError) and isinstance(result[1], EventRecord):
                exceptions[result[0].id] = exception_view(result[1])
        for result in fetched:
            if isinstance(result, ItemError) or not isinstance(result[1], EventRecord):
                continue
            ids = modified.get(result[0].id, [])
            result[1].exceptions = sorted(
                (exceptions[i] for i in ids if i in exceptions),
                key=lambda r: r.original_start or r.start or dt.datetime.min.replace(tzinfo=dt.UTC))

    def _converted(self, ref: ItemRef, item: Any) -> tuple[ItemRef, Record] | ItemError:
        if isinstance(item, Exception):
            return ItemError(ref, _short(str(item)) or type(item).__name__, type(item).__name__)
        try:
            record = to_record(item, self.access.time_zone)
        except Exception as exc:   # a malformed item: reported, the others go on
            return ItemError(ref, f"The item could not be read: {_short(str(exc))}",
                             type(exc).__name__)
        if record is None:
            return ItemError(ref, f"Not a supported item ({type(item).__name__})", "unsupported")
        return ItemRef(item.id, item.changekey or ""), record

    def read_window(self, folder: FolderInfo, start: dt.datetime, end: dt.datetime,
                    known: KnownVersions | None = None,
                    known_series: Callable[[list[str]], set[str]] | None = None,
                    ) -> Iterator[tuple[ItemRef, EventRecord]]:
        singles: dict[str, ItemRef] = {}
        occurrence_of: dict[str, str] = {}   # uid -> one occurrence's id (to find the master)
        occurrences: list[str] = []
        for view in self._view(folder, start, end):
            if view.type in ("Occurrence", "Exception"):
                occurrences.append(view.id)
            else:
                singles[view.id] = ItemRef(view.id, view.changekey or "")
        for item_id, uid in self._uids(occurrences).items():
            occurrence_of.setdefault(uid, item_id)
        # What the caller holds already needs no fetching (nor a master lookup).
        for item_id in known(list(singles.values())) if known and singles else set():
            singles.pop(item_id, None)
        for uid in known_series(list(occurrence_of)) if known_series and occurrence_of else set():
            occurrence_of.pop(uid, None)
        masters = self._masters(list(occurrence_of.values()))
        if known and masters:
            held = known(masters)
            masters = [m for m in masters if m.id not in held]
        for fetched in self.fetch(Kind.CALENDAR, [*singles.values(), *masters]):
            if isinstance(fetched, ItemError):
                log.warning("Calendar item skipped: %s", fetched.message)
                continue
            ref, record = fetched
            assert isinstance(record, EventRecord)
            yield ref, record

    def _view(self, folder: FolderInfo, start: dt.datetime, end: dt.datetime) -> Iterator[Any]:
        """A CalendarView (FindItem) asking only each item's id and type, in ranges small
        enough for Exchange's limits."""
        step = dt.timedelta(days=WINDOW_MAX_DAYS)
        cursor = start
        type_field = {FieldPath(field=CalendarItem.get_field_by_fieldname("type"))}
        while cursor < end:
            until = min(end, cursor + step)
            view = CalendarView(start=_as_ews_utc(cursor), end=_as_ews_utc(until),
                                max_items=WINDOW_MAX_ITEMS)
            with self._errors():
                items = [i for i in FindItem(account=self.account, page_size=WINDOW_MAX_ITEMS)
                         .call(folders=[self._folder(folder)], additional_fields=type_field,
                               restriction=None, order_fields=None, shape="IdOnly",
                               query_string=None, depth="Shallow", calendar_view=view,
                               max_items=WINDOW_MAX_ITEMS, offset=0)
                         if not isinstance(i, Exception)]
            if len(items) >= WINDOW_MAX_ITEMS and until - cursor > dt.timedelta(days=1):
                step = (until - cursor) / 2   # too many in this range: halve it and retry
                continue
            yield from items
            cursor = until

    def _uids(self, item_ids: list[str]) -> dict[str, str]:
        """The meeting UID of each occurrence (CalendarView cannot return it)."""
        uids: dict[str, str] = {}
        fields = {FieldPath(field=CalendarItem.get_field_by_fieldname("uid"))}
        for start in range(0, len(item_ids), BATCH_SIZE):
            with self._errors():
                for item in _GetItem(account=self.account, chunk_size=BATCH_SIZE).call(
                        items=[ItemId(i) for i in item_ids[start:start + BATCH_SIZE]],
                        additional_fields=fields, shape="IdOnly"):
                    if not isinstance(item, Exception):
                        uids[item.id] = item.uid or item.id
        return uids

    def _masters(self, occurrence_ids: list[str]) -> list[ItemRef]:
        from exchangelib.properties import RecurringMasterItemId

        refs: list[ItemRef] = []
        for start in range(0, len(occurrence_ids), BATCH_SIZE):
            chunk = occurrence_ids[start:start + BATCH_SIZE]
            with self._errors():
                results = list(_GetItem(account=self.account, chunk_size=BATCH_SIZE).call(
                    items=[RecurringMasterItemId(id=i) for i in chunk],
                    additional_fields=set(), shape="IdOnly"))
            refs.extend(ItemRef(r.id, r.changekey or "") for r in results
                        if not isinstance(r, Exception))
        return list(dict.fromkeys(refs))

    def find_by_stamp(self, folder: FolderInfo, stamps: Sequence[str]) -> dict[str, ItemRef]:
        found: dict[str, ItemRef] = {}
        wanted = list(dict.fromkeys(s for s in stamps if s))
        for start in range(0, len(wanted), 50):
            chunk = wanted[start:start + 50]
            with self._errors():
                items = list(self._folder(folder).filter(sync_stamp__in=chunk).only("sync_stamp"))
            for item in items:
                found.setdefault(item.sync_stamp, ItemRef(item.id, item.changekey or ""))
        return found

    def locate(self, kind: Kind, sought: Sequence[Sought]) -> dict[str, Located]:
        """An item's ItemId changes when it moves; its stamp and its meeting's global object id
        do not. One FindItem asks every folder of the mailbox at once for them (FindItem has no
        deep traversal except in search folders, but takes many folders)."""
        wanted: dict[tuple[str, Any], str] = {}   # ("stamp" | "goid", value) -> sought id
        for item in sought:
            if item.stamp:
                wanted[("stamp", item.stamp)] = item.ref.id
            if item.uid and kind is Kind.CALENDAR:
                wanted[("goid", clean_goid(item.uid))] = item.ref.id
        if not wanted:
            return {}
        folders = self._mailbox_folders()
        fields = {FieldPath(field=Contact.get_field_by_fieldname("sync_stamp")),
                  FieldPath(field=Contact.get_field_by_fieldname("parent_folder_id"))}
        if kind is Kind.CALENDAR:
            fields.add(FieldPath(field=CalendarItem.get_field_by_fieldname(
                "clean_global_object_id")))
        keys, ids = list(wanted), list(folders)
        found: dict[str, Located] = {}
        refused: list[Exception] = []
        for start in range(0, len(keys), KEYS_PER_SEARCH):
            query = _sought_query(keys[start:start + KEYS_PER_SEARCH])
            for first in range(0, len(ids), FOLDERS_PER_SEARCH):
                searched = [_IdFolder(self.account, FolderId(id=i))
                            for i in ids[first:first + FOLDERS_PER_SEARCH]]
                for item in self._find(searched, query, fields, refused):
                    parent = item.parent_folder_id.id if item.parent_folder_id else ""
                    if parent not in folders:
                        continue
                    here = Located(ItemRef(item.id, item.changekey or ""), *folders[parent])
                    goid = item.clean_global_object_id if isinstance(item, CalendarItem) \
                        else None   # a meeting request in the Inbox carries it too
                    for key in (("stamp", getattr(item, "sync_stamp", None)), ("goid", goid)):
                        gone_id = wanted.get(key) if key[1] else None
                        if gone_id and (gone_id not in found or found[gone_id].deleted):
                            found[gone_id] = here
        if refused and len(found) < len(set(wanted.values())):
            # An item not found would be taken for deleted, and deleted in the CRM: with a
            # folder left unsearched, that is not known. Better no answer than a wrong one.
            raise MailboxError(
                "Exchange would not search every folder of the mailbox for items moved out "
                f"of the synced folder ({type(refused[0]).__name__}); nothing was deleted, "
                "and the next run looks again.")
        return found

    def _find(self, folders: list[Folder], query: Q, fields: set[Any],
              refused: list[Exception]) -> list[Any]:
        """The items of these folders that `query` matches, with `fields`; what Exchange
        answered for a folder it would not search is added to `refused`."""
        with self._errors():
            answers = list(FindItem(account=self.account, page_size=FIND_MAX_ITEMS).call(
                folders=folders, additional_fields=fields,
                restriction=Restriction(query, folders=folders, applies_to=Restriction.ITEMS),
                order_fields=None, shape="IdOnly", query_string=None, depth="Shallow",
                calendar_view=None, max_items=None, offset=0))
        refused.extend(answer for answer in answers if isinstance(answer, Exception))
        return [answer for answer in answers if not isinstance(answer, Exception)]

    def _mailbox_folders(self) -> dict[str, tuple[str, bool]]:
        """Every folder of the mailbox (the top of it included, search folders not): its
        display path and whether it lies in Deleted Items. Read once per backend object (one
        run): a GetFolder for the top and Deleted Items, and a deep FindFolder."""
        if self._folders is not None:
            return self._folders
        with self._errors():
            tops = list(_RawGetFolder(account=self.account).call(
                folders=[self._folder_id("msgfolderroot"), self._folder_id("deleteditems")],
                additional_fields=_FOLDER_FIELDS, shape="IdOnly"))
            below = list(_RawFindFolder(account=self.account).call(
                folders=[self._folder("msgfolderroot")], additional_fields=_FOLDER_FIELDS,
                shape="IdOnly", depth="Deep"))
        for answer in (*tops, *below):
            if isinstance(answer, Exception):
                raise translate_error(answer, self.access)
        (root, root_name, _), (trash, _, _) = (_folder_facts(top) for top in tops)
        parents: dict[str, tuple[str, str]] = {}   # id -> (name, parent id)
        for element in below:
            if local_name(element) != "SearchFolder":
                folder_id, name, parent = _folder_facts(element)
                parents[folder_id] = (name, parent)
        folders = {root: (root_name, False)}
        for folder_id in parents:
            names, deleted, current = [], False, folder_id
            while current in parents and len(names) < 64:
                deleted = deleted or current == trash
                names.append(parents[current][0])
                current = parents[current][1]
            folders[folder_id] = ("/".join(reversed(names)), deleted)
        self._folders = folders
        return folders

    # writing
    def _item(self, kind: Kind, record: Record, **kwargs: Any) -> Any:
        if kind is Kind.CONTACTS and isinstance(record, ContactRecord):
            values = _contact_values(record)
        elif kind is Kind.CALENDAR and isinstance(record, EventRecord):
            values = _event_values(record, self.access.time_zone)
        elif kind is Kind.MAIL and isinstance(record, MessageRecord):
            values = _message_values(record)
        else:
            raise ValueError(f"a {type(record).__name__} does not go into a {kind.value} folder")
        return ITEM_CLASS[kind](account=self.account, **kwargs,
                                **{k: v for k, v in values.items() if v is not None})

    def create(self, folder: FolderInfo, records: Sequence[Record]) -> list[WriteResult]:
        if folder.kind is None:
            raise FolderNotFound(f"The folder {folder.path!r} holds no items this server syncs.")
        kind = folder.kind
        results: list[WriteResult] = []
        for start in range(0, len(records), BATCH_SIZE):
            chunk = records[start:start + BATCH_SIZE]
            items: dict[int, Any] = {}
            invalid: dict[int, str] = {}
            for index, record in enumerate(chunk):
                try:
                    items[index] = self._item(kind, record, folder=self._folder(folder))
                except (ValueError, TypeError) as exc:
                    invalid[index] = f"The record cannot be written: {exc}"
            sent_before = _traffic.requests
            try:
                answers = self._create_items(folder, list(items.values()))
            except MailboxError as exc:
                # exchangelib validates while serializing the whole batch, before sending
                # it: one bad item fails all of them, and nothing went out. Only then is
                # each validated on its own and the valid ones sent (validating all of them
                # up front cost as much as serializing them again; bench/).
                if _traffic.requests != sent_before or \
                        not isinstance(exc.__cause__, ValueError | TypeError):
                    raise
                for index, item in list(items.items()):
                    try:
                        item.clean(version=self.account.version)
                    except (ValueError, TypeError) as error:
                        invalid[index] = f"The record cannot be written: {error}"
                        del items[index]
                answers = self._create_items(folder, list(items.values()))
            written: list[WriteResult] = []
            for index in range(len(chunk)):
                if index in invalid:
                    written.append(WriteResult(WriteStatus.ERROR, message=invalid[index]))
                    continue
                written.append(_write_result(next(answers, None)))
            results += self._with_occurrences(list(zip(written, chunk, strict=True)))
        return results

    def _create_items(self, folder: FolderInfo, items: list[Any]) -> Iterator[Any]:
        """One CreateItem request for `items`; its answers, in order."""
        if not items:
            return iter([])
        with self._errors():
            return iter(list(_CreateItem(account=self.account, chunk_size=BATCH_SIZE).call(
                items=items, folder=self._folder(folder), message_disposition="SaveOnly",
                send_meeting_invitations="SendToNone")))

    def update(self, kind: Kind, updates: Sequence[Update]) -> list[WriteResult]:
        results: list[WriteResult] = []
        field_map = FIELD_MAP[kind]
        for start in range(0, len(updates), BATCH_SIZE):
            chunk = updates[start:start + BATCH_SIZE]
            pairs: list[tuple[Any, list[str]]] = []
            invalid: dict[int, str] = {}
            for index, update in enumerate(chunk):
                names = sorted({field_map[f] for f in update.fields if f in field_map})
                if kind is Kind.CALENDAR and "required_attendees" in names:
                    names.append("optional_attendees")
                if kind is Kind.CONTACTS and ({"surname", "given_name"} & set(names)):
                    names.append("file_as")
                try:
                    item = self._item(kind, update.record, id=update.ref.id,
                                      changekey=update.ref.version or None)
                except (ValueError, TypeError) as exc:
                    invalid[index] = f"The record cannot be written: {exc}"
                    continue
                if not names:
                    invalid[index] = ""   # nothing Exchange holds changed: nothing to send
                    continue
                pairs.append((item, names))
            with self._errors():
                answers = iter(list(_UpdateItem(account=self.account, chunk_size=BATCH_SIZE).call(
                    items=pairs, conflict_resolution="NeverOverwrite",
                    message_disposition="SaveOnly",
                    send_meeting_invitations_or_cancellations="SendToNone",
                    suppress_read_receipts=True)) if pairs else [])
            written: list[tuple[WriteResult, Record | None]] = []
            for index, update in enumerate(chunk):
                if index in invalid:
                    written.append((WriteResult(WriteStatus.OK, update.ref) if not invalid[index]
                                    else WriteResult(WriteStatus.ERROR, update.ref,
                                                     invalid[index]), None))
                    continue
                result = _write_result(next(answers, None), update.ref)
                # Exchange carries a master's change over to the occurrences that do not set
                # that field themselves, moved ones included: a series with exceptions has
                # them written again after any change, so they stay as the record says.
                rewrite = update.fields & {"exceptions", "deleted_occurrences", "recurrence"} or (
                    isinstance(update.record, EventRecord) and update.record.exceptions)
                written.append((result, update.record if rewrite else None))
            results += self._with_occurrences(written)
        return results

    def _with_occurrences(self, written: Sequence[tuple[WriteResult, Record | None]]
                          ) -> list[WriteResult]:
        """A batch's series written: now their exceptions and deleted occurrences, which
        Exchange keeps on the occurrences themselves (addressed by their index in the series),
        for the whole batch in one UpdateItem, one DeleteItem and one GetItem (the masters'
        new change keys) however many series it holds. `None` for a record: nothing to do."""
        series: list[_SeriesOccurrences] = []
        for position, (result, record) in enumerate(written):
            if (result.ok and result.ref is not None and isinstance(record, EventRecord)
                    and record.recurrence is not None and record.start is not None
                    and (record.exceptions or record.deleted_occurrences)):
                series.append(self._series_occurrences(position, result.ref, record))
        results = [result for result, _ in written]
        if not series:
            return results
        changes = [change for one in series for change in one.changes]
        doomed = [target for one in series for target in one.doomed]
        with self._errors():
            updated = list(_UpdateItem(account=self.account, chunk_size=BATCH_SIZE).call(
                items=changes, conflict_resolution="AlwaysOverwrite",
                message_disposition="SaveOnly",
                send_meeting_invitations_or_cancellations="SendToNone",
                suppress_read_receipts=True)) if changes else []
            deleted = list(_DeleteItem(account=self.account, chunk_size=BATCH_SIZE).call(
                items=doomed, delete_type="MoveToDeletedItems",
                send_meeting_cancellations="SendToNone",
                affected_task_occurrences="AllOccurrences", suppress_read_receipts=True)
            ) if doomed else []
            current = list(_GetItem(account=self.account, chunk_size=BATCH_SIZE).call(
                items=[ItemId(one.master.id) for one in series], additional_fields=set(),
                shape="IdOnly"))
        updated_answers, deleted_answers = iter(updated), iter(deleted)
        for one, now in zip(series, current, strict=False):
            answers = [next(updated_answers, None) for _ in one.changes] + \
                [next(deleted_answers, None) for _ in one.doomed]
            problems = one.problems + [
                _short(str(a)) for a in answers if isinstance(a, Exception)
                and not isinstance(a, ews_errors.ErrorItemNotFound)]
            ref = ItemRef(now.id, now.changekey or "") if not isinstance(now, Exception) \
                else one.master
            result = results[one.position]
            message = ("Some occurrences could not be written: " + "; ".join(problems)) \
                if problems else result.message
            results[one.position] = WriteResult(result.status, ref, message)
        return results

    def _series_occurrences(self, position: int, master: ItemRef,
                            record: EventRecord) -> _SeriesOccurrences:
        """What writing `record`'s exceptions and deleted occurrences takes (no I/O)."""
        assert record.recurrence is not None and record.start is not None
        zone = record.time_zone or self.access.time_zone
        rule, first = record.recurrence, record.start

        def occurrence(original: dt.datetime | None) -> OccurrenceItemId | None:
            index = index_of(rule, first, zone, original) if original else None
            return OccurrenceItemId(id=master.id, instance_index=index) if index else None

        one = _SeriesOccurrences(position, master)
        for exception in record.exceptions:
            target = occurrence(exception.original_start)
            if target is None:
                one.problems.append(f"no occurrence starts at {exception.original_start}")
                continue
            try:
                values = _event_values(dataclasses.replace(
                    exception, recurrence=None, uid="", stamp=""), self.access.time_zone)
            except ValueError as exc:
                one.problems.append(str(exc))
                continue
            names = ["subject", "start", "end", "location", "body", "is_all_day", "sensitivity"]
            item = CalendarItem(account=self.account, **{n: values.get(n) for n in names})
            item._id = target
            one.changes.append((item, names))
        one.doomed = [t for t in map(occurrence, record.deleted_occurrences) if t is not None]
        return one

    def delete(self, kind: Kind, refs: Sequence[ItemRef]) -> list[WriteResult]:
        results: list[WriteResult] = []
        for start in range(0, len(refs), BATCH_SIZE):
            chunk = refs[start:start + BATCH_SIZE]
            with self._errors():
                answers = list(_DeleteItem(account=self.account, chunk_size=BATCH_SIZE).call(
                    items=[ItemId(r.id) for r in chunk], delete_type="MoveToDeletedItems",
                    send_meeting_cancellations="SendToNone",
                    affected_task_occurrences="AllOccurrences", suppress_read_receipts=True))
            for ref, answer in zip(chunk, answers, strict=False):
                result = _write_result(answer, ref)
                if result.status is WriteStatus.NOT_FOUND:
                    result = WriteResult(WriteStatus.OK, ref, "already gone")
                results.append(result)
        return results

    def move(self, kind: Kind, refs: Sequence[ItemRef], folder: FolderInfo) -> list[WriteResult]:
        results: list[WriteResult] = []
        target = self._folder_id(folder.id)
        for start in range(0, len(refs), BATCH_SIZE):
            chunk = refs[start:start + BATCH_SIZE]
            with self._errors():
                # No ChangeKey: a move carries the item as it is now, edits included, so an
                # edit made since the last read is no reason to refuse it.
                answers = list(_MoveItem(account=self.account, chunk_size=BATCH_SIZE).call(
                    items=[ItemId(r.id) for r in chunk], to_folder=target))
            results.extend(_write_result(answer, ref)
                           for ref, answer in zip(chunk, answers, strict=False))
            results.extend(WriteResult(WriteStatus.ERROR, ref, "The server gave no answer "
                                       "for this item.") for ref in chunk[len(answers):])
        return results

    # photos and attachments
    def _get_one(self, ref: ItemRef, kind: Kind, fields: tuple[str, ...]) -> Any:
        with self._errors():
            results = list(_GetItem(account=self.account, chunk_size=1).call(
                items=[ItemId(ref.id)], additional_fields=_field_paths(kind, fields),
                shape="IdOnly"))
        if not results or isinstance(results[0], Exception):
            raise MailboxError(f"The item is not in the mailbox any more: {results[:1]}")
        return results[0]

    def read_photo(self, ref: ItemRef) -> bytes | None:
        contact = self._get_one(ref, Kind.CONTACTS, ("attachments",))
        for attachment in contact.attachments or []:
            if isinstance(attachment, FileAttachment) and attachment.is_contact_photo:
                with self._errors():
                    return attachment.content
        return None

    def set_photo(self, ref: ItemRef, photo: bytes | None) -> WriteResult:
        contact = self._get_one(ref, Kind.CONTACTS, ("attachments",))
        with self._errors():
            for attachment in list(contact.attachments or []):
                if isinstance(attachment, FileAttachment) and attachment.is_contact_photo:
                    contact.detach(attachment)
            token = ""
            if photo:
                picture = FileAttachment(name="ContactPicture.jpg", content=photo,
                                         is_contact_photo=True)
                contact.attach(picture)
                token = picture.attachment_id.id if picture.attachment_id else ""
        return WriteResult(WriteStatus.OK, ItemRef(contact.id, contact.changekey or ""),
                           token=token)

    def _attachment(self, item: ItemRef, attachment_ref: str) -> Any:
        message = self._get_one(item, Kind.MAIL, ("attachments",))
        for attachment in message.attachments or []:
            attachment_id = attachment.attachment_id
            if attachment_id is not None and attachment_id.id == attachment_ref:
                return attachment
        raise MailboxError("The attachment is not on the e-mail any more.")

    def open_attachment(self, item: ItemRef,
                        attachment_ref: str) -> AbstractContextManager[BinaryIO]:
        # Built from the id the read gave, not looked up with a GetItem of the message first:
        # streaming needs only the id and the account, and the lookup was a second request
        # per attachment (half of an import run's requests). An attachment gone meanwhile
        # fails on GetAttachment instead, as a MailboxError all the same.
        attachment = FileAttachment(attachment_id=AttachmentId(id=attachment_ref),
                                    parent_item=Message(account=self.account, id=item.id))

        return server_stream(attachment.fp, self._errors)

    def write_item_attachment(self, item: ItemRef, attachment_ref: str, sink: BinaryIO) -> int:
        attachment = self._attachment(item, attachment_ref)
        if not isinstance(attachment, ItemAttachment):
            raise MailboxError("This attachment is a file, not an attached item.")
        with self._errors():
            inner = attachment.item
        mime = inner.mime_content if inner is not None else None
        if not mime:
            raise MailboxError("The attached item has no MIME content to save.")
        data = mime if isinstance(mime, bytes) else str(mime).encode()
        sink.write(data)
        return len(data)

    # notifications
    def watch(self, folders: Sequence[FolderInfo], minutes: int = 30) -> Iterator[set[str]]:
        """Wait for changes in these folders (a streaming subscription); yield the ids (as
        given) of the folders that changed, as Exchange reports them. Returns when Exchange
        closes the connection after `minutes`; the caller watches again. Notifications only
        trigger syncs: a change missed between two connections is found by the next sync."""
        ours = {self._describe(f.id).get("FolderId") or f.id: f.id for f in folders}
        with self._errors():
            subscription = SubscribeToStreaming(account=self.account).get(
                folders=[self._folder(f) for f in folders],
                event_types=SubscribeToStreaming.EVENT_TYPES)
        try:
            with self._errors():
                for notification in GetStreamingEvents(account=self.account).call(
                        subscription_ids=[subscription], connection_timeout=minutes):
                    changed = {ours[e.parent_folder_id.id] for e in notification.events
                               if getattr(e, "parent_folder_id", None) is not None
                               and e.parent_folder_id.id in ours}
                    if changed:
                        yield changed
        finally:
            with contextlib.suppress(Exception):   # it expires on its own anyway
                Unsubscribe(account=self.account).get(subscription_id=subscription)

    def watch_many(self, targets: Sequence[WatchTarget], minutes: int = 30,
                   until: Callable[[], bool] | None = None) -> Iterator[WatchReport]:
        """One streaming subscription per mailbox, made as that mailbox (impersonation), and
        one GetStreamingEvents request carrying them all (see MailboxBackend.watch_many)."""
        if self._watch_group is None:
            self._watch_group = _WatchGroup(self)
        # A stream is a run of its own: the throttling budget starts afresh with each (this
        # object lives as long as the listener's group, far beyond one budget).
        _budget.deadline = time.monotonic() + self.access.throttle_budget_seconds
        return self._watch_group.watch(targets, minutes, until or (lambda: False))

    @property
    def requests_made(self) -> int:
        return _traffic.requests - self._requests_before

    def start(self, call: Callable[[], Any]) -> Pending[Any]:
        if self._writer is None:
            self._writer = _Worker(self, "ews-write-behind")
        return self._writer.submit(call)


class _SyncStateRefused(Exception):
    """Exchange no longer knows a stored sync state: the folder is read from scratch."""


@dataclasses.dataclass
class _Listed:
    """One SyncFolderItems page before its items are fetched."""

    changes: list[ItemChange]   # deletions, and items whose version is known already
    to_fetch: list[ItemRef]
    state: str
    done: bool
    restarted: bool = False
    left_out: list[LeftOut] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _ListedPage:
    listed: _Listed
    fetching: Pending[list[Fetched]] | None

    def page(self) -> ChangePage:
        changes, errors = list(self.listed.changes), []
        for result in self.fetching.result() if self.fetching is not None else []:
            if isinstance(result, ItemError):
                if result.code == "ErrorItemNotFound" and result.ref is not None:
                    # Created and deleted again between the two requests.
                    changes.append(ItemChange(ChangeType.DELETE, result.ref))
                else:
                    errors.append(result)
            else:
                ref, record = result
                changes.append(ItemChange(ChangeType.UPSERT, ref, record))
        listed = self.listed
        return ChangePage(changes=changes, errors=errors, state=listed.state, done=listed.done,
                          restarted=listed.restarted, left_out=listed.left_out)


class _Background(Pending[Any]):
    """A call under way in a _Worker's thread."""

    def __init__(self, worker: _Worker, future: Future[Any]) -> None:
        super().__init__()
        self._worker, self._future, self._done = worker, future, False

    def result(self) -> Any:
        if not self._done:
            self._done = True
            self._value, self._error = self._worker.finish(self, self._future)
        return super().result()


class _Worker:
    """One background thread for a mailbox's calls. It carries the caller's throttling budget
    there and the requests it sent back (both are per thread); what runs there touches no
    database (Django's connections and transactions are per thread)."""

    def __init__(self, mailbox: EwsMailbox, name: str) -> None:
        self.mailbox, self.name = mailbox, name
        self._pool: ThreadPoolExecutor | None = None
        self._outstanding: list[_Background] = []

    def submit(self, call: Callable[[], Any]) -> _Background:
        _ = self.mailbox.account   # created here: two threads must not race to create it
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        deadline = _budget.deadline

        def run() -> tuple[Any, BaseException | None, int]:
            _budget.deadline = deadline
            before = _traffic.requests
            try:
                return call(), None, _traffic.requests - before
            except BaseException as exc:   # raised in the caller's thread (Pending.result)
                return None, exc, _traffic.requests - before

        pending = _Background(self, self._pool.submit(run))
        self._outstanding.append(pending)
        return pending

    def finish(self, pending: _Background, future: Future[Any]
               ) -> tuple[Any, BaseException | None]:
        self._outstanding.remove(pending)
        value, error, sent = future.result()
        _traffic.requests += sent
        return value, error

    def discard(self) -> None:
        """Waits for what is under way and drops it (its requests still count)."""
        for pending in list(self._outstanding):
            with contextlib.suppress(Exception):
                pending.result()

    def close(self) -> None:
        self.discard()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class _RawGetFolder(GetFolder):
    """GetFolder answering with the XML elements: parsing them into folder objects would need
    the mailbox's root folder, which costs requests of its own."""

    def _elems_to_objs(self, elems: Any) -> Iterator[Any]:
        yield from elems


class _RawFindFolder(FindFolder):
    """FindFolder answering with the XML elements, as _RawGetFolder does (FindFolder's own
    call asks for the root folder first)."""

    def call(self, folders: Any, additional_fields: Any, shape: Any,  # type: ignore[override]
             depth: Any) -> Iterator[Any]:
        return self._paged_call(payload_func=self.get_payload, max_items=None, folders=folders,
                                additional_fields=additional_fields, restriction=None,
                                shape=shape, depth=depth, page_size=self.page_size, offset=0)


_FOLDER_FIELDS = {FieldPath(field=Folder.get_field_by_fieldname(name))
                  for name in ("name", "folder_class", "total_count", "parent_folder_id")}


def _folder_facts(element: Any) -> tuple[str, str, str]:
    """A folder element's id, display name and parent's id."""
    facts = {local_name(child): child.text or child.get("Id") or "" for child in element
             if isinstance(child.tag, str)}
    return facts.get("FolderId", ""), facts.get("DisplayName", ""), \
        facts.get("ParentFolderId", "")


def local_name(element: Any) -> str:
    return str(element.tag).rsplit("}", 1)[-1]


class _IdFolder(Folder):
    """A folder known only by its id: requests can name it without fetching it first."""

    __slots__ = ("_account_ref", "_folder_id")

    def __init__(self, account: Account, folder_id: Any) -> None:
        super().__init__(id=getattr(folder_id, "id", None), changekey=None)
        self._account_ref = account
        self._folder_id = folder_id

    @property
    def account(self) -> Account:
        return self._account_ref

    @property
    def root(self) -> Any:
        return self._account_ref.root

    def to_id(self) -> Any:
        return self._folder_id


def _base_class(folder_class: str | None) -> str:
    # "IPF.Contact.MOC.QuickContacts" is a contacts folder too; a mail folder may have no class.
    if not folder_class:
        return "IPF.Note"
    parts = folder_class.split(".")
    return ".".join(parts[:2])


def _field_paths(kind: Kind, fields: tuple[str, ...] | None = None) -> set[Any]:
    cls = ITEM_CLASS[kind]
    return {FieldPath(field=cls.get_field_by_fieldname(name))
            for name in (fields or FIELDS[kind])}


def _write_result(answer: Any, ref: ItemRef | None = None) -> WriteResult:
    if answer is None:
        return WriteResult(WriteStatus.ERROR, ref, "The server gave no answer for this item.")
    if isinstance(answer, ews_errors.ErrorIrresolvableConflict | ews_errors.ErrorInvalidChangeKey):
        return WriteResult(WriteStatus.CONFLICT, ref,
                           "Changed in Exchange since it was read; it will be merged next time.")
    if isinstance(answer, ews_errors.ErrorItemNotFound):
        return WriteResult(WriteStatus.NOT_FOUND, ref, "The item is not in the mailbox any more.")
    if isinstance(answer, Exception):
        return WriteResult(WriteStatus.ERROR, ref,
                           f"{type(answer).__name__}: {_short(str(answer))}")
    if isinstance(answer, BulkCreateResult | CalendarItem | Contact | Message):
        return WriteResult(WriteStatus.OK, ItemRef(answer.id, answer.changekey or ""))
    if answer is True:
        return WriteResult(WriteStatus.OK, ref)
    item_id, changekey = answer if isinstance(answer, tuple) else (None, None)
    if item_id:
        return WriteResult(WriteStatus.OK, ItemRef(item_id, changekey or ""))
    return WriteResult(WriteStatus.OK, ref)


# --- watching a group of mailboxes over one stream (EwsMailbox.watch_many) ------------------
RESUBSCRIBE_ROUNDS = 3   # refusals in a row within one watch_many() call before it gives up
# Failures of the connection as a whole: every mailbox of the group would fail alike.
_CONNECTION_WIDE = (AuthenticationFailed, ConnectionRefused, DnsFailure, TlsFailure, TimedOut,
                    ServiceUnavailable, Throttled)
# Answers meaning Exchange does not know a subscription (any more): it is made again.
_SUBSCRIPTIONS_GONE = (ews_errors.ErrorInvalidSubscription, ews_errors.ErrorSubscriptionNotFound,
                       ews_errors.ErrorExpiredSubscription,
                       ews_errors.ErrorSubscriptionAccessDenied,
                       ews_errors.ErrorNewEventStreamConnectionOpened)


class _Affinity:
    """Microsoft's recipe for a group of subscriptions: every request of the group names the
    same anchor mailbox (X-AnchorMailbox) and carries the X-BackEndOverrideCookie the first
    subscription got back, so that load balancers send them all to the Mailbox server that
    holds the subscriptions (elsewhere they are unknown: ErrorSubscriptionNotFound)."""

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
        if self.affinity.anchor:
            headers["X-AnchorMailbox"] = self.affinity.anchor
        if self.affinity.cookie:
            headers["X-BackEndOverrideCookie"] = self.affinity.cookie
        return headers

    def _handle_response_cookies(self, session: Any) -> None:
        super()._handle_response_cookies(session)  # type: ignore[misc]
        if self.affinity.cookie is None:
            self.affinity.cookie = next((c.value for c in session.cookies
                                         if c.name == "X-BackEndOverrideCookie"), None)


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
    mailbox: EwsMailbox            # the target's own mailbox (the service account acting as it)
    subscription_id: str
    folder_ids: dict[str, str]     # folder id as Exchange reports it -> as the target gave it


class _WatchGroup:
    """The streaming subscriptions of the mailboxes one EwsMailbox watches together."""

    def __init__(self, owner: EwsMailbox) -> None:
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
        mailbox = self.owner if target.access == self.owner.access else EwsMailbox(target.access)
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
            except ews_errors.EWSError as exc:
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
        except (ews_errors.TransportError, OSError):
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
