"""MIME content of a message that did not arrive as MIME (made through EWS, or attached to one).

Exchange serves `MimeContent` for every message, converting what the store holds
("MimeContent", learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/
mimecontent; MS-OXCMAIL for the mapping): headers from its properties, its one body, each file
attachment as a part and each attached message as a `message/rfc822` part, recursively. Mail
delivered as MIME keeps the bytes it came with instead (`Item.mime`).
"""

from __future__ import annotations

import email.policy
import email.utils
from email import message_from_bytes
from email.message import EmailMessage

from lxml import etree

from .ns import tq
from .store import Item

HEADERS = (("From", "From"), ("To", "ToRecipients"), ("Cc", "CcRecipients"))


def _addresses(el: etree._Element | None) -> str:
    if el is None:
        return ""
    return ", ".join(
        email.utils.formataddr((mbx.findtext(tq("Name")) or "",
                                mbx.findtext(tq("EmailAddress")) or ""))
        for mbx in el.iter(tq("Mailbox")))


def _one_line(value: str) -> str:
    """A header value: line breaks in a property are not header folding."""
    return " ".join(value.splitlines())


def mime_content(item: Item) -> bytes | None:
    """EWS `MimeContent`: a message's MIME; None for other items (contacts would be vCards,
    calendar items iCalendar: not converted here) that did not come as MIME."""
    if item.mime is None and item.tag != "Message":
        return None
    return message_mime(item)


def message_mime(item: Item) -> bytes:
    """The item's MIME: as delivered, or made from the store (Graph's `$value` too)."""
    if item.mime is not None:
        return item.mime
    return _build(item).as_bytes(policy=email.policy.SMTP)


def _build(item: Item) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = _one_line(item.text("Subject") or "")
    for header, prop in HEADERS:
        value = _addresses(item.props.get(prop))
        if value:
            msg[header] = _one_line(value)
    msg["Date"] = email.utils.format_datetime(item.received)
    if item.text("InternetMessageId"):
        msg["Message-ID"] = item.text("InternetMessageId")
    body = item.props.get("Body")
    html = body is not None and body.get("BodyType") == "HTML"
    msg.set_content((body.text if body is not None else None) or "",
                    subtype="html" if html else "plain")
    for att in item.attachments:
        if att.item is not None:
            inner = message_from_bytes(message_mime(att.item), policy=email.policy.default)
            msg.add_attachment(inner, filename=att.name or None)
        elif not att.is_contact_photo:
            maintype, _, subtype = (att.content_type or "").partition("/")
            msg.add_attachment(att.content or b"", maintype=maintype or "application",
                               subtype=subtype or "octet-stream", filename=att.name or None,
                               disposition="inline" if att.is_inline else "attachment",
                               cid=f"<{att.content_id}>" if att.content_id else None)
    return msg
