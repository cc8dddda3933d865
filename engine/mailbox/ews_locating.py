"""Finding items moved out of a synced folder, by their stamp or meeting id, in all folders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exchangelib import CalendarItem, Contact, Q
from exchangelib.fields import FieldPath
from exchangelib.folders import Folder
from exchangelib.properties import FolderId
from exchangelib.restriction import Restriction
from exchangelib.services import FindItem

from engine.mailbox.base import ItemRef, Located, MailboxError, Sought
from engine.mailbox.ews_connection import EwsConnection
from engine.mailbox.ews_properties import clean_goid, sought_query
from engine.mailbox.ews_services import IdFolder
from engine.records import Kind

FIND_MAX_ITEMS = 1000     # Exchange refuses bigger FindItem pages (ErrorExceededFindCountLimit)
# A search for items gone from a synced folder (locate): folders per FindItem, and stamps or
# meeting ids per restriction.
FOLDERS_PER_SEARCH = 100
KEYS_PER_SEARCH = 100


class EwsLocating(EwsConnection):
    """EwsMailbox's search for items moved out of a synced folder."""

    def locate(self, kind: Kind, sought: Sequence[Sought]) -> dict[str, Located]:
        """An item's ItemId changes when it moves; its stamp and its meeting's global object id
        do not. One FindItem asks every folder of the mailbox at once for them (FindItem has no
        deep traversal except in search folders, but takes many folders)."""
        wanted: dict[tuple[str, Any], str] = {}   # ("stamp" | "goid", value) -> sought id
        for item in sought:
            if item.stamp:
                wanted[("stamp", item.stamp)] = item.ref.id
            if item.uid and kind is Kind.CALENDAR:
                wanted[("goid", clean_goid(item.uid))] = item.ref.id
        if not wanted:
            return {}
        folders = self._mailbox_folders()
        fields = {FieldPath(field=Contact.get_field_by_fieldname("sync_stamp")),
                  FieldPath(field=Contact.get_field_by_fieldname("parent_folder_id"))}
        if kind is Kind.CALENDAR:
            fields.add(FieldPath(field=CalendarItem.get_field_by_fieldname(
                "clean_global_object_id")))
        keys, ids = list(wanted), list(folders)
        found: dict[str, Located] = {}
        refused: list[Exception] = []
        for start in range(0, len(keys), KEYS_PER_SEARCH):
            query = sought_query(keys[start:start + KEYS_PER_SEARCH])
            for first in range(0, len(ids), FOLDERS_PER_SEARCH):
                searched = [IdFolder(self.account, FolderId(id=i))
                            for i in ids[first:first + FOLDERS_PER_SEARCH]]
                for item in self._find(searched, query, fields, refused):
                    parent = item.parent_folder_id.id if item.parent_folder_id else ""
                    if parent not in folders:
                        continue
                    here = Located(ItemRef(item.id, item.changekey or ""), *folders[parent])
                    goid = item.clean_global_object_id if isinstance(item, CalendarItem) \
                        else None   # a meeting request in the Inbox carries it too
                    for key in (("stamp", getattr(item, "sync_stamp", None)), ("goid", goid)):
                        gone_id = wanted.get(key) if key[1] else None
                        if gone_id and (gone_id not in found or found[gone_id].deleted):
                            found[gone_id] = here
        if refused and len(found) < len(set(wanted.values())):
            # An item not found would be taken for deleted, and deleted in the CRM: with a
            # folder left unsearched, that is not known. Better no answer than a wrong one.
            raise MailboxError(
                "Exchange would not search every folder of the mailbox for items moved out "
                f"of the synced folder ({type(refused[0]).__name__}); nothing was deleted, "
                "and the next run looks again.")
        return found

    def _find(self, folders: list[Folder], query: Q, fields: set[Any],
              refused: list[Exception]) -> list[Any]:
        """The items of these folders that `query` matches, with `fields`; what Exchange
        answered for a folder it would not search is added to `refused`."""
        with self._errors():
            answers = list(FindItem(account=self.account, page_size=FIND_MAX_ITEMS).call(
                folders=folders, additional_fields=fields,
                restriction=Restriction(query, folders=folders, applies_to=Restriction.ITEMS),
                order_fields=None, shape="IdOnly", query_string=None, depth="Shallow",
                calendar_view=None, max_items=None, offset=0))
        refused.extend(answer for answer in answers if isinstance(answer, Exception))
        return [answer for answer in answers if not isinstance(answer, Exception)]
