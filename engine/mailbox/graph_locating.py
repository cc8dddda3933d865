"""Finding items moved out of a synced folder through Graph (ids survive moves: where are they?)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from engine.mailbox.base import FolderNotFound, ItemRef, Located, Sought
from engine.mailbox.graph_connection import EVENTS_PREFER, GraphConnection
from engine.mailbox.graph_errors import translate
from engine.mailbox.graph_http import BatchRequest
from engine.records import Kind


class GraphLocating(GraphConnection):
    """GraphMailbox's search for items moved out of a synced folder."""

    def locate(self, kind: Kind, sought: Sequence[Sought]) -> dict[str, Located]:
        """Immutable ids stay when an item moves: each item is asked where it is, 20 to a
        `$batch`. An event answers with its calendar (v1.0 gives events no parentFolderId);
        Graph serves no event that is in Deleted Items, which makes it a deletion too."""
        if not sought:
            return {}
        if kind is Kind.CALENDAR:
            answers = self._batch([BatchRequest("GET", self._item_url(
                kind, item.ref.id, "/calendar?$select=id,name")) for item in sought],
                EVENTS_PREFER)
        else:
            answers = self._batch([BatchRequest("GET", self._item_url(
                kind, item.ref.id, "?$select=id,changeKey,parentFolderId")) for item in sought])
        found: dict[str, Located] = {}
        for item, answer in zip(sought, answers, strict=True):
            if answer.status == 404:
                continue   # deleted for good (or, an event, in Deleted Items)
            if not answer.ok or not isinstance(answer.body, dict):
                raise translate(answer.error(), self.access)
            if kind is Kind.CALENDAR:
                calendar = self.get_folder(str(answer.body.get("id") or ""), kind)
                found[item.ref.id] = Located(ItemRef(item.ref.id), calendar.path, False)
            else:
                path, deleted = self._where(kind, str(answer.body.get("parentFolderId") or ""))
                found[item.ref.id] = Located(
                    ItemRef(item.ref.id, str(answer.body.get("changeKey") or "")), path, deleted)
        return found

    def _where(self, kind: Kind, folder_id: str) -> tuple[str, bool]:
        """A folder's display path from the top of the mailbox, and whether it lies in Deleted
        Items; each folder asked once (a contact may be in a mail folder, Archive, and the
        other way round, so the folder is asked as either)."""
        if folder_id in self._places:
            return self._places[folder_id]
        top = self._get_folder_json(Kind.MAIL, "msgfolderroot")["id"]
        trash = self._get_folder_json(Kind.MAIL, "deleteditems")["id"]
        kinds = (kind, Kind.MAIL) if kind is Kind.CONTACTS else (Kind.MAIL, Kind.CONTACTS)
        names: list[str] = []
        deleted, current = False, folder_id
        while current and current != top and len(names) < 64:
            deleted = deleted or current == trash
            found = next((self._folder_cache[(k, current)] for k in kinds
                          if (k, current) in self._folder_cache), None)
            for folder_kind in kinds if found is None else ():
                with contextlib.suppress(FolderNotFound):
                    found = self._get_folder_json(folder_kind, current)
                    break
            if found is None:
                break
            names.append(str(found.get("displayName") or ""))
            current = str(found.get("parentFolderId") or "")
        self._places[folder_id] = ("/".join(reversed(names)), deleted)
        return self._places[folder_id]
