"""Bodies as Exchange serves them: one stored body, `TextBody` and `BodyType` conversions.

Exchange keeps one body per item and converts it on request:
- TextBody (Exchange 2013+) is the text body of the item:
  https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/textbody
- BodyType in the ItemShape / AttachmentShape picks the format of Body (Best, HTML, Text):
  https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/bodytype
- A MIME message with text and HTML alternatives keeps the HTML one as its body (MS-OXCMAIL
  "Selecting the Primary Message Text MIME Element"; "No to multiple bodies on a message",
  Microsoft's developer messaging blog, 2015).
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest
from exchangelib import HTMLBody, Message
from exchangelib.attachments import AttachmentId, ItemAttachment
from exchangelib.fields import FieldPath
from exchangelib.properties import ItemId
from exchangelib.services import GetAttachment, GetItem
from exchangelib.util import create_element

from ewsim.bodies import html_to_text, text_to_html

HTML = ("<html><head><style>p {margin: 0}</style><title>x</title></head><body>\r\n"
        "<p>Dobrý&nbsp;den,</p>\r\n<div>cena: 5 &lt; 7 &amp;   více</div>"
        "řádek<br>druhý<ul><li>jedna</li><li>dvě</li></ul></body></html>")
HTML_AS_TEXT = "Dobrý den,\r\ncena: 5 < 7 & více\r\nřádek\r\ndruhý\r\njedna\r\ndvě"


class GetItemAs(GetItem):
    """GetItem with a BodyType in its ItemShape (exchangelib's GetItem sends none)."""

    body_type = "Best"

    def get_payload(self, items: Any, additional_fields: Any, shape: Any) -> Any:
        payload = super().get_payload(items, additional_fields, shape)
        shape_el = payload[0]
        body_type = create_element("t:BodyType")
        body_type.text = self.body_type
        shape_el.insert(1, body_type)   # after BaseShape, as ItemShapeType orders it
        return payload


def _fetch(account: Any, item_id: str, body_type: str, *fields: str) -> Message:
    service = GetItemAs(account=account)
    service.body_type = body_type
    (item,) = service.call(items=[ItemId(item_id)], shape="IdOnly", additional_fields={
        FieldPath(field=Message.get_field_by_fieldname(f)) for f in fields})
    return item


def _deliver(ewsim: Any, body: str, body_type: str) -> str:
    return str(ewsim.control.deliver(ewsim.user, subject="Nabídka", body=body,
                                     body_type=body_type)["id"])


def test_html_to_text_drops_tags_breaks_blocks_and_decodes_entities() -> None:
    assert html_to_text(HTML) == HTML_AS_TEXT
    assert html_to_text("<pre>a  b\n c</pre>x") == "a  b\r\n c\r\nx"


def test_text_to_html_escapes_and_breaks_lines() -> None:
    converted = text_to_html("a < b\r\n& c")
    assert '<div class="PlainText">a &lt; b<br>\r\n&amp; c</div>' in converted
    assert converted.startswith("<html>") and html_to_text(converted) == "a < b\r\n& c"


def test_text_body_is_the_html_body_as_text(ewsim, account):
    item_id = _deliver(ewsim, HTML, "HTML")
    (got,) = account.fetch(ids=[ItemId(item_id)], only_fields=["body", "text_body"])
    assert isinstance(got.body, HTMLBody) and str(got.body) == HTML   # Best: as stored
    assert got.text_body == HTML_AS_TEXT


def test_text_body_of_a_text_body_is_the_body_itself(ewsim, account):
    item_id = _deliver(ewsim, "Dobrý den,\nposílám <podklady>.", "Text")
    (got,) = account.fetch(ids=[ItemId(item_id)], only_fields=["body", "text_body"])
    assert not isinstance(got.body, HTMLBody)
    assert got.body == got.text_body == "Dobrý den,\nposílám <podklady>."


def test_all_properties_do_not_include_the_text_body(ewsim, account):
    # TextBody is not in the AllProperties set ("Property sets and response shapes in EWS in
    # Exchange", learn.microsoft.com): it comes only when named.
    item_id = _deliver(ewsim, HTML, "HTML")
    (got,) = GetItem(account=account).call(items=[ItemId(item_id)], shape="AllProperties",
                                           additional_fields=set())
    assert got.body == HTML and got.text_body is None


@pytest.mark.parametrize(("stored", "stored_type", "asked", "html", "expected"), [
    (HTML, "HTML", "Text", False, HTML_AS_TEXT),
    (HTML, "HTML", "HTML", True, HTML),
    (HTML, "HTML", "Best", True, HTML),
    ("a < b\nc", "Text", "HTML", True, text_to_html("a < b\nc")),
    ("a < b\nc", "Text", "Text", False, "a < b\nc"),
    ("a < b\nc", "Text", "Best", False, "a < b\nc"),
])
def test_body_type_in_the_item_shape_converts_the_body(ewsim, account, stored, stored_type,
                                                       asked, html, expected):
    item_id = _deliver(ewsim, stored, stored_type)
    got = _fetch(account, item_id, asked, "body")
    assert isinstance(got.body, HTMLBody) == html
    assert str(got.body) == expected


def test_a_mime_message_with_text_and_html_alternatives_keeps_the_html(ewsim, account):
    mime = EmailMessage()
    mime["Subject"], mime["From"], mime["To"] = "Obě", "petr@stavby.cz", ewsim.user
    mime.set_content("the sender's own text\n")
    mime.add_alternative("<p>the <b>HTML</b> one</p>", subtype="html")
    item_id = ewsim.control.deliver(ewsim.user, mime=mime.as_bytes())["id"]
    (got,) = account.fetch(ids=[ItemId(item_id)], only_fields=["body", "text_body"])
    assert isinstance(got.body, HTMLBody) and "<b>HTML</b>" in got.body
    assert got.text_body == "the HTML one"


def test_body_type_in_the_attachment_shape_converts_an_attached_items_body(ewsim, account):
    outer = Message(account=account, folder=account.drafts, subject="Fwd")
    outer.save()
    outer.attach(ItemAttachment(name="Nabídka", item=Message(subject="Nabídka",
                                                             body=HTMLBody("<p>a</p><p>b</p>"))))
    (attached,) = account.drafts.get(id=outer.id).attachments
    payload_id = AttachmentId(id=attached.attachment_id.id)
    (as_text,) = GetAttachment(account=account).call(
        items=[payload_id], include_mime_content=False, body_type="Text",
        filter_html_content=None, additional_fields=None)
    assert as_text.item.body == "a\r\nb" and not isinstance(as_text.item.body, HTMLBody)
    (best,) = GetAttachment(account=account).call(
        items=[payload_id], include_mime_content=False, body_type=None,
        filter_html_content=None, additional_fields=None)
    assert isinstance(best.item.body, HTMLBody) and best.item.body == "<p>a</p><p>b</p>"

