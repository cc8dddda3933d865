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


def message_mime(item: Item) -> bytes | None:
    """The item's MIME: as delivered, or built from the store; None for other than mail."""
    if item.mime is not None:
        return item.mime
    if item.tag != "Message":
        return None   # contacts (vCard) and calendar items (iCalendar) are not converted here
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
            inner = message_mime(att.item)
            if inner is not None:
                msg.add_attachment(message_from_bytes(inner, policy=email.policy.default))
            continue
        maintype, _, subtype = (att.content_type or "").partition("/")
        if not subtype:
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(att.content or b"", maintype=maintype, subtype=subtype,
                           filename=att.name or None,
                           disposition="inline" if att.is_inline else "attachment",
                           cid=f"<{att.content_id}>" if att.content_id else None)
    return msg
