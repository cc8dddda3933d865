"""Build items 'from outside': inbound mail from raw MIME or fields (control plane)."""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import email.utils
import re
import uuid
from typing import Any

from lxml import etree

from . import ids
from .ns import T, sub, t_el
from .store import Attachment, Item
from .timeutil import now, parse_dt


def _mailboxes(tag: str, addresses: list[tuple[str, str]]) -> etree._Element:
    el = t_el(tag)
    for name, address in addresses:
        mbx = sub(el, T, "Mailbox")
        if name:
            sub(mbx, T, "Name", name)
        sub(mbx, T, "EmailAddress", address)
        sub(mbx, T, "RoutingType", "SMTP")
    return el


def _addr_list(values: Any) -> list[tuple[str, str]]:
    if not values:
        return []
    if isinstance(values, str):
        values = [values]
    # One header may name several people ("A <a@x>, B <b@x>"): parseaddr would keep only one.
    return email.utils.getaddresses(values)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_safe(value: Any) -> Any:
    """Exchange serves what XML can carry: characters XML forbids (NUL, other controls, lone
    surrogates from undecodable headers) become U+FFFD, as Exchange replaces them."""
    if isinstance(value, str):
        return _NOT_XML.sub("\ufffd", value)
    if isinstance(value, list):
        return [_xml_safe(v) for v in value]
    if isinstance(value, dict):
        return {key: _xml_safe(v) for key, v in value.items()}
    return value


def message_from_fields(fields: dict[str, Any]) -> Item:
    fields = {key: _xml_safe(value) for key, value in fields.items()}
    item = Item(id=ids.item_id(), tag="Message", folder_id="", mailbox="")
    p = item.props
    p["Subject"] = t_el("Subject", fields.get("subject", ""))
    body = fields.get("body", "")
    p["Body"] = t_el("Body", body, BodyType=fields.get("body_type", "Text"))
    if fields.get("from"):
        frm = _addr_list(fields["from"])
        p["From"] = _mailboxes("From", frm)
        p["Sender"] = _mailboxes("Sender", frm)
    for key, tag in (("to", "ToRecipients"), ("cc", "CcRecipients")):
        if fields.get(key):
            p[tag] = _mailboxes(tag, _addr_list(fields[key]))
    p["InternetMessageId"] = t_el("InternetMessageId", fields.get(
        "message_id") or f"<{uuid.uuid4().hex}@ewsim.local>")
    p["IsRead"] = t_el("IsRead", "true" if fields.get("is_read") else "false")
    if fields.get("categories"):
        cats = t_el("Categories")
        for c in fields["categories"]:
            sub(cats, T, "String", c)
        p["Categories"] = cats
    received = parse_dt(fields.get("received")) if fields.get("received") else None
    item.received = received or now()
    for spec in fields.get("attachments", []):
        content: bytes
        if "content" in spec:
            content = spec["content"] if isinstance(spec["content"], bytes) else \
                str(spec["content"]).encode()
        else:
            # Synthesised payload for large-attachment tests without shipping the bytes.
            size = int(spec.get("size", 0))
            pattern = b"ewsim-attachment"
            whole, rest = divmod(size, len(pattern))
            # One allocation when the size is a multiple of the pattern (any size in KB or MB).
            content = pattern * whole if not rest else (pattern * (whole + 1))[:size]
        item.attachments.append(Attachment(id=ids.attachment_id(),
                                           name=spec.get("name", "file.bin"),
                                           content_type=spec.get("content_type",
                                                                 "application/octet-stream"),
                                           content=content,
                                           is_inline=bool(spec.get("is_inline"))))
    item.size = len(body) + sum(a.size for a in item.attachments) + 500
    return item


def _text(part: email.message.EmailMessage) -> str:
    """A text part's content. Exchange takes mail in any charset, known or not (`X-UNKNOWN`,
    `unknown-8bit`): the bytes are kept as they came, and the text is what decodes, with a
    replacement character for each byte that does not."""
    try:
        return str(part.get_content())
    except LookupError:   # a charset Python does not know
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""


def message_from_mime(raw: bytes) -> Item:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body_part = msg.get_body(preferencelist=("html", "plain"))
    body = _text(body_part) if body_part is not None else ""
    fields: dict[str, Any] = {
        "subject": str(msg.get("Subject", "")),
        "from": [str(msg["From"])] if msg.get("From") else [],
        "to": [str(a) for a in msg.get_all("To", [])],
        "cc": [str(a) for a in msg.get_all("Cc", [])],
        "message_id": str(msg.get("Message-ID", "")) or None,
        "body": body,
        "body_type": "HTML" if body_part is not None and
                     body_part.get_content_subtype() == "html" else "Text",
        "attachments": [],
    }
    if msg.get("Date"):
        with contextlib.suppress(TypeError, ValueError):
            fields["received"] = email.utils.parsedate_to_datetime(str(msg["Date"])).isoformat()
    attached_mail: list[Attachment] = []
    for part in msg.iter_attachments():
        if part.get_content_type() == "message/rfc822":
            # An attached e-mail is an item attachment in Exchange, not a file.
            inner = part.get_content()
            inner_item = message_from_mime(inner.as_bytes())
            name = _xml_safe(str(inner.get("Subject", ""))) or "message"
            attached_mail.append(Attachment(id=ids.attachment_id(), name=name,
                                            content_type="message/rfc822", item=inner_item))
            continue
        fields["attachments"].append({
            "name": part.get_filename() or "attachment",
            "content_type": part.get_content_type(),
            "content": part.get_payload(decode=True) or b"",
        })
    item = message_from_fields(fields)
    item.attachments.extend(attached_mail)
    item.size += sum(a.size for a in attached_mail)
    item.mime = raw
    return item
