"""Item bodies as Exchange serves them: one stored body, converted when asked for another type.

Exchange keeps a single body per item, in the format it arrived in (for a MIME message with
both a text and an HTML part, the HTML one: MS-OXCMAIL "Selecting the Primary Message Text MIME
Element"), and converts on the way out: `BodyType` Text or HTML in the ItemShape (or
AttachmentShape) asks for `Body` in that format, Best (the default) for the stored one, and
the Exchange 2013 property `item:TextBody` is always the plain text
(https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/textbody).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from lxml import etree

from .ns import t_el
from .store import Item

# Elements that start and end a line of text; `br` breaks one.
BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "footer", "form",
    "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre", "section",
    "table", "tr", "ul"})
# Elements whose content is not text of the message.
HIDDEN = frozenset({"head", "script", "style", "title"})
_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")


class _TextWriter(HTMLParser):
    """HTML to text: tags dropped, blocks and `br` as line breaks, entities decoded, runs of
    white space in the markup as one space (as a browser shows them), `pre` kept as it is."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0
        self.pre = 0

    def _at_line_start(self) -> bool:
        return not self.out or self.out[-1].endswith("\n")

    def _end_line(self) -> None:
        if not self._at_line_start():
            self.out.append("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in BLOCKS:
            self._end_line()
        if tag == "pre":
            self.pre += 1
        elif tag in ("td", "th") and not self._at_line_start():
            self.out.append("\t")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in BLOCKS:
            self._end_line()
        if tag == "pre":
            self.pre = max(0, self.pre - 1)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if not self.pre:
            data = _HTML_SPACE.sub(" ", data)
            if self._at_line_start():
                data = data.lstrip(" ")
        if data:
            self.out.append(data)


def html_to_text(markup: str) -> str:
    """The plain text Exchange makes of an HTML body: lines end in CRLF, as in its bodies."""
    writer = _TextWriter()
    writer.feed(markup)
    writer.close()
    text = "".join(writer.out).replace("\xa0", " ")
    lines = [line.rstrip() for line in text.split("\n")]
    return "\r\n".join(lines).strip("\r\n")


def text_to_html(text: str) -> str:
    """The HTML Exchange makes of a text body: the text escaped, its lines joined by `<br>`,
    in one `PlainText` div of an HTML document."""
    lines = text.replace("\r\n", "\n").split("\n")
    escaped = "<br>\r\n".join(html.escape(line, quote=False) for line in lines)
    return ("<html>\r\n<head>\r\n"
            '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n'
            "</head>\r\n<body>\r\n"
            f'<div class="PlainText">{escaped}</div>\r\n'
            "</body>\r\n</html>\r\n")


def body_values(item: Item, body_type: str, text_body: bool) -> dict[str, etree._Element]:
    """`Body` converted to `body_type` (Best: as stored) and, if asked for, `TextBody`."""
    stored = item.props.get("Body")
    if stored is None:
        return {}
    native = stored.get("BodyType", "Text")
    content = stored.text or ""
    out: dict[str, etree._Element] = {}
    if body_type in ("HTML", "Text") and body_type != native:
        converted = html_to_text(content) if body_type == "Text" else text_to_html(content)
        out["Body"] = t_el("Body", converted, BodyType=body_type)
    if text_body:
        out["TextBody"] = t_el("TextBody", content if native == "Text" else
                               html_to_text(content), BodyType="Text")
    return out
