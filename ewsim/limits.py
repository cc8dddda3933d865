"""The lengths Exchange holds for the text fields a sync writes: cut, refused, or kept.

What is known, and from where:

* Subject, on every kind of item: "The subject is limited to 255 characters" (learn.microsoft.com,
  EWS reference, "Subject"). Exchange cuts a longer one and saves the item: cut silently here.
* A contact's GivenName, MiddleName and Surname: a value over 255 characters is refused, the
  item (or the change) is not saved and its response message is `ErrorPropertyUpdate`; the
  other items of the same request are saved as usual (one response message per item). Microsoft
  documents no number; 255 is what Exchange does (issue #23) and what exchangelib, whose test
  suite runs against live servers, allows for exactly these fields (its `CharField`s).
* Everything else a sync writes (company, job title, department, display name, location,
  phone numbers, e-mail addresses, postal address parts): Microsoft documents no limit and
  none is observed at the lengths that matter: exchangelib's live-server suite writes 400
  characters to these (`TextField`s) and reads them back unchanged. Kept as given here.

Lengths are counted as Exchange (.NET) counts them: in UTF-16 code units, so a character
outside the Basic Multilingual Plane (an emoji) counts twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lxml import etree

from .ns import local
from .soap import MessageError
from .store import Item

SUBJECT_LIMIT = 255
# Cut silently, on any item: property element -> the longest value kept.
CUT: Mapping[str, int] = {"Subject": SUBJECT_LIMIT}
# Refused with ErrorPropertyUpdate, on the item types named: element -> longest value taken.
REFUSED: Mapping[str, Mapping[str, int]] = {
    "Contact": {"GivenName": 255, "MiddleName": 255, "Surname": 255},
}
# The same contact fields as Graph names them (a contact's JSON body).
GRAPH_REFUSED: Mapping[str, int] = {"givenName": 255, "middleName": 255, "surname": 255}


def units(text: str) -> int:
    """The length of `text` as Exchange counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` UTF-16 code units, never through a surrogate pair."""
    if units(text) <= limit:
        return text
    return text.encode("utf-16-le")[:2 * limit].decode("utf-16-le", errors="ignore")


def too_long(name: str, limit: int) -> MessageError:
    return MessageError("ErrorPropertyUpdate",
                        f"The value of {name} is longer than {limit} characters.")


def fit_element(item_tag: str, holder: etree._Element) -> None:
    """Apply the limits to the property elements of `holder` (a CreateItem item, or the item
    element of a SetItemField): cut what Exchange cuts, raise for what it refuses. Raises
    before anything is stored, so a refused item or change leaves no trace."""
    refused = REFUSED.get(item_tag, {})
    for child in holder:
        if not isinstance(child.tag, str) or not child.text:
            continue
        name = local(child)
        if name in refused and units(child.text) > refused[name]:
            raise too_long(name, refused[name])
        if name in CUT:
            child.text = cut(child.text, CUT[name])


def fit_updates(item_tag: str, updates: list[etree._Element]) -> None:
    """An UpdateItem's changes for one item, checked all before any is applied: Exchange
    saves all of an item's changes or none."""
    for upd in updates:
        if local(upd) != "DeleteItemField" and len(upd) > 1:
            fit_element(item_tag, upd[1])


def check_graph_contact(data: Mapping[str, Any]) -> None:
    """A Graph contact body: the same refusal as EWS's, as Graph's 400 with Exchange's code
    (Graph's Outlook endpoints answer with Exchange's error codes: ErrorItemNotFound,
    ErrorIrresolvableConflict...). Microsoft documents neither the limit nor the answer."""
    from .graph.errors import bad_request  # the Graph package imports this module

    for name, limit in GRAPH_REFUSED.items():
        value = data.get(name)
        if isinstance(value, str) and units(value) > limit:
            raise bad_request(f"The value of {name} is longer than {limit} characters.",
                              "ErrorPropertyUpdate")


def cut_item(item: Item) -> None:
    """Cut the item's stored properties that Exchange cuts (Graph writes them one by one)."""
    for name, limit in CUT.items():
        el = item.props.get(name)
        if el is not None and el.text:
            el.text = cut(el.text, limit)
