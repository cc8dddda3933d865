"""SOAP envelopes, response messages and faults in the exact shapes exchangelib parses
(notes §3.2 and §3.5)."""

from __future__ import annotations

from lxml import etree

from .ns import NSMAP, E, M, S, T, mq, sub

SERVER_VERSION = {"MajorVersion": "15", "MinorVersion": "1", "MajorBuildNumber": "2507",
                  "MinorBuildNumber": "6", "Version": "V2017_07_11"}

MESSAGES = {
    "ErrorItemNotFound": "The specified object was not found in the store.",
    "ErrorFolderNotFound": "The specified folder could not be found in the store.",
    "ErrorServerBusy": "The server cannot service this request right now. Try again later.",
    "ErrorInvalidSyncStateData": "Synchronization state data is corrupt or otherwise invalid.",
    "ErrorIrresolvableConflict": "The send or update operation could not be performed because the "
                                 "change key passed in the request does not match the current "
                                 "change key for the item.",
    "ErrorNonExistentMailbox": "The SMTP address has no mailbox associated with it.",
    "ErrorImpersonateUserDenied": "The account does not have permission to impersonate the "
                                  "requested user.",
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorInvalidExchangeImpersonationHeaderData": "ExchangeImpersonation SOAP header must be "
                                                   "present for this type of OAuth token.",
    "ErrorInvalidOperation": "The operation is not supported by this simulator.",
    "ErrorSubscriptionNotFound": "The specified subscription was not found.",
    "ErrorInvalidSubscription": "Subscription is invalid.",
    "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange": "Occurrence index is out of "
                                                           "recurrence range.",
    "ErrorCalendarCannotUseIdForOccurrenceId": "Id must be an occurrence id.",
    "ErrorInvalidIdMalformed": "Id is malformed.",
    "ErrorInvalidIdEmpty": "Id must be non-empty.",
    "ErrorInvalidChangeKey": "The change key is invalid.",
    "ErrorInvalidSmtpAddress": "The SMTP address format is invalid.",
    "ErrorCalendarViewRangeTooBig": "The time window specified is larger than the maximum "
                                    "allowed range.",
}


class EwsFault(Exception):
    """Raised by operations to answer with a SOAP fault (HTTP 500)."""

    def __init__(self, code: str, message: str | None = None,
                 back_off_ms: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or MESSAGES.get(code, code)
        self.back_off_ms = back_off_ms


class MessageError(Exception):
    """Raised inside a per-id handler to produce a ResponseClass="Error" message."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or MESSAGES.get(code, code)


def envelope(payload: etree._Element) -> etree._Element:
    env = etree.Element(f"{{{S}}}Envelope", nsmap={"s": S})
    header = sub(env, S, "Header")
    etree.SubElement(header, f"{{{T}}}ServerVersionInfo", SERVER_VERSION, nsmap={"h": T})
    body = sub(env, S, "Body")
    body.append(payload)
    return env


def serialize(env: etree._Element) -> bytes:
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def fault(code: str, message: str, back_off_ms: int | None = None) -> bytes:
    env = etree.Element(f"{{{S}}}Envelope", nsmap={"s": S})
    body = sub(env, S, "Body")
    flt = sub(body, S, "Fault")
    fc = etree.SubElement(flt, "faultcode", nsmap={"a": T})
    fc.text = f"a:{code}"
    fs = etree.SubElement(flt, "faultstring")
    fs.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    fs.text = message
    # Unqualified <detail>: exchangelib does fault.find("detail") (notes §3.5).
    detail = etree.SubElement(flt, "detail")
    rc = etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E})
    rc.text = code
    msg = etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E})
    msg.text = message
    if back_off_ms is not None:
        # t: namespace here, unlike m:MessageXml in response messages.
        mx = etree.SubElement(detail, f"{{{T}}}MessageXml", nsmap={"t": T})
        val = sub(mx, T, "Value", str(back_off_ms), Name="BackOffMilliseconds")
        assert val is not None
    return serialize(env)


def response_root(op: str) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(mq(f"{op}Response"), nsmap=NSMAP_MT)
    msgs = sub(root, M, "ResponseMessages")
    return root, msgs


NSMAP_MT = {"m": M, "t": T}
assert NSMAP["m"] == M


def success(msgs: etree._Element, op: str) -> etree._Element:
    msg = sub(msgs, M, f"{op}ResponseMessage", ResponseClass="Success")
    sub(msg, M, "ResponseCode", "NoError")
    return msg


# The schema requires these containers even in error messages (Exchange sends them empty).
ERROR_CONTAINERS = {"GetItem": "Items", "CreateItem": "Items", "UpdateItem": "Items",
                    "MoveItem": "Items", "CopyItem": "Items", "GetFolder": "Folders",
                    "CreateFolder": "Folders", "GetAttachment": "Attachments",
                    "CreateAttachment": "Attachments"}


def error(msgs: etree._Element, op: str, code: str, text: str | None = None,
          klass: str = "Error") -> etree._Element:
    msg = sub(msgs, M, f"{op}ResponseMessage", ResponseClass=klass)
    sub(msg, M, "MessageText", text or MESSAGES.get(code, code))
    sub(msg, M, "ResponseCode", code)
    sub(msg, M, "DescriptiveLinkKey", "0")
    if op in ERROR_CONTAINERS:
        sub(msg, M, ERROR_CONTAINERS[op])
    return msg
