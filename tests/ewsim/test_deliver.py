"""Inbound mail from raw MIME: ewsim takes any message a real server takes, and serves its
bytes unchanged and its text as well as it can be decoded."""

from __future__ import annotations

import datetime as dt
import email.utils

import pytest

BODY = b"Dobr\xfd den, \xe8\xed\xf1\xe1 \xbd\r\nZ\xe1v\xecr.\r\n"
UNKNOWN_CHARSET = (
    b"From: Jan Novak <jan@example.cz>\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: =?X-UNKNOWN?Q?Nab=EDdka?= na zitra\r\n"
    b"Message-ID: <unknown-charset@example.cz>\r\n"
    b"Date: " + email.utils.format_datetime(dt.datetime.now(dt.UTC) - dt.timedelta(hours=5)
                                            ).encode() + b"\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=X-UNKNOWN\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n" + BODY
)


def multipart(charset: bytes) -> bytes:
    """An HTML body and a text attachment, both in `charset`."""
    return (
        b"From: jan@example.cz\r\nTo: alice@example.com\r\nSubject: Cenik\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/html; charset=" + charset + b"\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>Cen=EDk</p>\r\n"
        b"--B\r\nContent-Type: text/plain; charset=" + charset + b"; name=cenik.txt\r\n"
        b"Content-Disposition: attachment; filename=cenik.txt\r\n\r\nCen\xedk\r\n--B--\r\n"
    )


def test_mail_in_an_unknown_charset_is_delivered_with_its_bytes_kept(ewsim, account):
    ewsim.control.deliver(ewsim.user, mime=UNKNOWN_CHARSET)
    (message,) = account.inbox.all().only("subject", "body", "mime_content",
                                          "message_id", "author")
    assert message.message_id == "<unknown-charset@example.cz>"
    assert message.author.email_address == "jan@example.cz"
    assert message.mime_content == UNKNOWN_CHARSET
    # The text as Exchange gives it: what decodes, with a replacement for each byte that
    # does not (the charset says nothing of what those bytes mean).
    assert message.body.startswith("Dobr\ufffd den, \ufffd\ufffd\ufffd\ufffd \ufffd")
    assert "Z\ufffdv\ufffdr." in message.body
    assert "na zitra" in message.subject and "\ufffd" in message.subject


@pytest.mark.parametrize("charset", [b"X-UNKNOWN", b"unknown-8bit", b'"utf-8\\"'])
def test_an_unknown_charset_in_an_html_body_or_text_attachment_is_delivered(
        ewsim, account, charset):
    raw = multipart(charset)
    ewsim.control.deliver(ewsim.user, mime=raw)
    (message,) = account.inbox.all().only("body", "attachments", "mime_content")
    assert message.mime_content == raw
    assert "Cen\ufffdk" in str(message.body)
    (attachment,) = message.attachments
    assert attachment.name == "cenik.txt" and attachment.content == b"Cen\xedk"


def test_an_attached_mail_whose_subject_decodes_to_control_characters_is_served(
        ewsim, account):
    raw = (b"From: a@example.cz\r\nTo: alice@example.com\r\nSubject: Fwd\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n"
           b"\r\nsee below\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n"
           b"From: b@example.cz\r\nSubject: =?x-unknown?B?AAEC?= =?utf-8?Q?=00?=\r\n"
           b"Content-Type: text/html; charset=x-unknown\r\n\r\n<p>\xe8</p>\r\n--B--\r\n")
    ewsim.control.deliver(ewsim.user, mime=raw)
    (message,) = account.inbox.all().only("attachments", "mime_content")
    assert message.mime_content == raw
    (attached,) = message.attachments
    assert attached.name == "\ufffd" * 4
    assert "<p>\ufffd</p>" in str(attached.item.body)
