"""Finding English a Czech reader would see: the words of the catalogue's English messages
that its Czech translations never use, looked for in a page's visible text.

Product names (Exchange, CRM, Outlook) appear in the Czech translations too, so they are not
counted as English; neither are names and addresses taken from the data.
"""

from __future__ import annotations

import re
from functools import cache
from html.parser import HTMLParser

from tests.portal.catalog import catalog_entries

WORD = re.compile(r"[^\W\d_]{2,}")
# A word as prose writes it (lower case, capitalised or in capitals), not a random token.
AS_WRITTEN = re.compile(r"[A-Z]?[a-z]+|[A-Z]+")
# Addresses, paths, identifiers and masked values ("aT******", a password hash) are data,
# not words: left out before splitting.
DATA = re.compile(r"\S+@\S+|\S*[/\\]\S*|\S*_\S*|https?:\S+|\S*\*\S*")
# Attributes a person reads (buttons' values, tooltips, labels for screen readers).
READ_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt"}
HIDDEN = {"script", "style", "template", "textarea"}
# Names Django's own Czech help texts keep in English (keys, a kind of sign-in), and product
# names the product's do (Exchange Server Subscription Edition).
NAMES = re.compile(r"Command|Control|Single Sign-On|Subscription Edition")


# A message's placeholders ("%(organization)s", "{{ name }}") are no words of its language.
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\{?\s*\w+\s*\}?\}")


@cache
def english_words() -> frozenset[str]:
    """Words of the English messages that no Czech translation contains."""
    english: set[str] = set()
    czech: set[str] = set()
    for entry in catalog_entries():
        for key, value in entry.items():
            text = DATA.sub(" ", PLACEHOLDER.sub(" ", str(value)))
            words = {w.casefold() for w in WORD.findall(text)}
            if key.startswith("msgid"):
                english |= words
            elif key.startswith("msgstr"):
                czech |= words
    return frozenset(english - czech)


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._hidden: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in HIDDEN:
            self._hidden.append(tag)
        self.texts += [value for name, value in attrs if name in READ_ATTRIBUTES and value]
        if tag == "input" and values.get("type") in ("submit", "button", "reset"):
            self.texts.append(values.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if self._hidden and self._hidden[-1] == tag:
            self._hidden.pop()

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.texts.append(" ".join(data.split()))


def visible_texts(html: str) -> list[str]:
    """The text of an HTML page a person reads: text nodes and read attributes."""
    parser = _Text()
    parser.feed(html)
    return parser.texts


def english_in(texts: list[str], allowed: frozenset[str] = frozenset()) -> list[str]:
    """The texts that hold an English word (each with the words found)."""
    vocabulary = english_words() - {w.casefold() for w in allowed}
    found = []
    for text in texts:
        words = [w for w in WORD.findall(DATA.sub(" ", NAMES.sub(" ", text)))
                 if w.casefold() in vocabulary and AS_WRITTEN.fullmatch(w)]
        if words:
            found.append(f"{text!r}: {', '.join(words)}")
    return found
