"""Errors Exchange gives where a lenient simulator would not (issue #23, item 8).

The response codes are those of Microsoft's ResponseCode reference,
https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsecode :
ErrorInvalidIdMalformed ("the caller specifies an Id attribute that is malformed"),
ErrorInvalidIdEmpty ("an Id attribute that is empty"), ErrorInvalidChangeKey ("a folder or
item identifier with a change key that cannot be parsed. For example, this could be invalid
base64 content or an empty string"). The cases are those exchangelib's own test suite checks
against real servers (tests/test_items/test_bulk.py, test_calendaritems.py, test_folder.py).
"""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from exchangelib import DEEP, SHALLOW, CalendarItem, EWSDateTime, Folder, Message
from exchangelib.errors import (
    ErrorFolderNotFound,
    ErrorInvalidChangeKey,
    ErrorInvalidIdMalformed,
    ErrorInvalidOperation,
    ErrorItemNotFound,
)
from exchangelib.fields import FieldOrder, FieldPath
from exchangelib.folders import SingleFolderQuerySet
from exchangelib.properties import CalendarView
from exchangelib.services import FindFolder, FindItem
from lxml import etree

from ewsim.ns import M, T

from .conftest import TZ
from .folder_helpers import FIELDS, tree

# Not base64, base64 of too little, an ewsim-looking occurrence id that does not decode.
MALFORMED = ["not-an-id!", "AAAA==", "XXX", "AAMkOAAAAAAAAAAA"]
UNKNOWN = "AAMkAGV3c2ltLW5vLXN1Y2g="   # parses, names nothing


def _drafts(account, n: int) -> list[Message]:
    items = [Message(account=account, folder=account.drafts, subject=f"Draft {i}")
             for i in range(n)]
    for item in items:
        item.save()
    return items


def test_get_item_tells_a_malformed_id_from_an_unknown_one(account):
    (draft,) = _drafts(account, 1)
    answers = list(account.fetch(ids=[(i, None) for i in MALFORMED]
                                 + [(UNKNOWN, None), (draft.id, None)],
                                 only_fields=["subject"]))
    assert [type(a) for a in answers[:len(MALFORMED)]] == \
        [ErrorInvalidIdMalformed] * len(MALFORMED)
    assert isinstance(answers[-2], ErrorItemNotFound)
    assert answers[-1].subject == "Draft 0"


def _raw_get_item(ewsim, item_id: str) -> tuple[str, str]:
    """GetItem sent as bytes: exchangelib does not send an empty Id attribute."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        '<s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header><s:Body>'
        '<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
        f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem></s:Body></s:Envelope>')
    answer = requests.post(ewsim.url, data=body.encode(), auth=(ewsim.user, ewsim.password),
                           headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=10)
    root = etree.fromstring(answer.content)
    message = next(e for e in root.iter() if etree.QName(e).localname == "GetItemResponseMessage")
    code = next(e.text for e in message.iter() if etree.QName(e).localname == "ResponseCode")
    return message.get("ResponseClass"), code


def test_an_empty_id_is_error_invalid_id_empty(ewsim):
    assert _raw_get_item(ewsim, "") == ("Error", "ErrorInvalidIdEmpty")
    assert _raw_get_item(ewsim, UNKNOWN) == ("Error", "ErrorItemNotFound")


def test_update_move_copy_and_delete_refuse_a_malformed_id_per_item(account):
    drafts = _drafts(account, 3)
    drafts[1].id = "AAAA=="
    for draft in drafts:
        draft.subject = "Edited"
    updated = list(account.bulk_update([(d, ["subject"]) for d in drafts]))
    assert isinstance(updated[1], ErrorInvalidIdMalformed)
    assert not isinstance(updated[0], Exception) and not isinstance(updated[2], Exception)
    moved = list(account.bulk_move(ids=[(drafts[0].id, None), ("XXX", None)],
                                   to_folder=account.inbox))
    assert isinstance(moved[1], ErrorInvalidIdMalformed) and not isinstance(moved[0], Exception)
    copied = list(account.bulk_copy(ids=[("not-an-id!", None)], to_folder=account.inbox))
    assert isinstance(copied[0], ErrorInvalidIdMalformed)
    deleted = list(account.bulk_delete([("XXX", None), (drafts[2].id, None)]))
    assert isinstance(deleted[0], ErrorInvalidIdMalformed) and deleted[1] is True
    assert [m.subject for m in account.inbox.all().only("subject")] == ["Edited"]


def test_delete_refuses_a_change_key_it_cannot_parse(account):
    drafts = _drafts(account, 3)
    drafts[1].changekey = "XXX"
    drafts[2].changekey = drafts[0].changekey   # well formed though not its own: deleted
    answers = list(account.bulk_delete(drafts))
    assert answers[0] is True and answers[2] is True
    assert isinstance(answers[1], ErrorInvalidChangeKey)
    assert [m.subject for m in account.drafts.all().only("subject")] == ["Draft 1"]


def test_get_folder_refuses_a_malformed_folder_id(account):
    with pytest.raises(ErrorInvalidIdMalformed):
        SingleFolderQuerySet(account=account, folder=Folder(root=account.root, id="XXX")).get()
    with pytest.raises(ErrorFolderNotFound):
        SingleFolderQuerySet(account=account,
                             folder=Folder(root=account.root, id="AAMkFbm8tc3VjaA==")).get()


def _window() -> tuple[EWSDateTime, EWSDateTime]:
    start = EWSDateTime(2025, 3, 3, 8, tzinfo=TZ)
    return start, start + dt.timedelta(days=7)


def test_a_calendar_view_takes_no_restriction_and_no_sort_order(account):
    # exchangelib's test suite: view(...).filter(...) "EWS does not allow restrictions"
    # (ErrorInvalidOperation); it sorts a view client-side for the same reason.
    start, end = _window()
    CalendarItem(account=account, folder=account.calendar, subject="Standup",
                 start=start + dt.timedelta(hours=1), end=start + dt.timedelta(hours=2)).save()
    view = account.calendar.view(start=start, end=end)
    assert [i.subject for i in view] == ["Standup"]
    with pytest.raises(ErrorInvalidOperation):
        view.filter(subject="Standup").count()
    subject = FieldPath(field=CalendarItem.get_field_by_fieldname("subject"))
    order = [FieldOrder(subject)]
    find = FindItem(account=account)
    with pytest.raises(ErrorInvalidOperation):
        list(find.call(
            folders=[account.calendar], additional_fields={subject}, restriction=None,
            order_fields=order, shape="IdOnly", query_string=None, depth=SHALLOW,
            calendar_view=CalendarView(start=start, end=end), max_items=None, offset=0))


def test_find_folder_honours_a_restriction(account):
    # "The Restriction element represents the restriction or query that is used to filter
    # items or folders in FindItem/FindFolder" (on folder properties only):
    # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/restriction
    orders = Folder(parent=account.inbox, name="Orders").save()
    Folder(parent=orders, name="Old orders").save()
    Folder(parent=account.contacts, name="Partners", folder_class="IPF.Contact").save()
    tree = SingleFolderQuerySet(account=account, folder=account.msg_folder_root)
    assert [f.name for f in tree.filter(name="Orders")] == ["Orders"]
    assert {f.name for f in tree.filter(name__in=["Orders", "Old orders", "Nothing"])} == {
        "Orders", "Old orders"}
    assert {f.name for f in tree.filter(name__contains="orders")} == {"Old orders"}
    contacts = {f.name for f in tree.filter(folder_class="IPF.Contact")}
    assert {"Contacts", "Partners"} <= contacts and "Orders" not in contacts
    assert [f.name for f in tree.depth(SHALLOW).filter(name="Old orders")] == []
    assert [f.name for f in tree.depth(DEEP).filter(child_folder_count__gt=0)
            if f.name in ("Orders", "Old orders", "Partners")] == ["Orders"]


class _RawRestriction:
    """A restriction exchangelib cannot express for folders (an extended property), as XML."""

    def __init__(self, expression: str) -> None:
        self.expression = expression

    def to_xml(self, version: object) -> etree._Element:
        return etree.fromstring(f'<m:Restriction xmlns:m="{M}" xmlns:t="{T}">'
                                f"{self.expression}</m:Restriction>")


HIDDEN_URI = '<t:ExtendedFieldURI PropertyTag="0x10F4" PropertyType="Boolean"/>'


def _names(account, expression: str) -> set[str]:
    found = FindFolder(account=account)._paged_call(
        payload_func=FindFolder(account=account).get_payload, max_items=None,
        folders=[account.root], additional_fields=FIELDS,
        restriction=_RawRestriction(expression), shape="IdOnly", depth=DEEP, page_size=500,
        offset=0)
    return {element.findtext(f"{{{T}}}DisplayName") for element in found}


def test_find_folder_restricts_on_the_hidden_flag(account):
    # PidTagAttributeHidden (MS-OXCFOLD 2.2.2.2.2.1: "nonzero if the folder is hidden"),
    # left out where it was never set, as Exchange leaves out any unset property.
    hidden = _names(account, f'<t:IsEqualTo>{HIDDEN_URI}<t:FieldURIOrConstant>'
                             '<t:Constant Value="true"/></t:FieldURIOrConstant></t:IsEqualTo>')
    unset = _names(account, f"<t:Not><t:Exists>{HIDDEN_URI}</t:Exists></t:Not>")
    assert hidden and unset and not hidden & unset
    assert "Inbox" in unset and "Contacts" in unset
    assert hidden == {name for name, info in tree(account, account.root, DEEP).items()
                      if info["hidden"]}
