"""The Graph backend's folders: listing, describing, the category list."""

from __future__ import annotations

from typing import Any

from engine.mailbox.base import Category, FolderInfo, MailboxError, ServerInfo
from engine.mailbox.category_list import by_name
from engine.mailbox.graph_connection import GraphConnection, quoted
from engine.mailbox.graph_errors import GraphError
from engine.mailbox.wording import folder_gone
from engine.records import Kind

VERSION = "Microsoft Graph v1.0"


class GraphFolders(GraphConnection):
    """GraphMailbox's connection check, folders and category list."""

    def check(self) -> ServerInfo:
        # Opening the mailbox's top folder proves the token, the consent and the mailbox.
        self._call("GET", "/mailFolders/msgfolderroot", params={"$select": "id"})
        return ServerInfo(version=VERSION, mailbox=self.access.mailbox)

    def _get_folder_json(self, kind: Kind, folder_id: str) -> dict[str, Any]:
        key = (kind, folder_id)
        if key in self._folder_cache:
            return self._folder_cache[key]
        if kind is Kind.CALENDAR:
            path = "/calendar" if folder_id.lower() == "calendar" \
                else f"/calendars/{quoted(folder_id)}"
            select = "id,name"
        elif kind is Kind.CONTACTS:
            path, select = f"/contactFolders/{quoted(folder_id)}", "id,displayName,parentFolderId"
        else:
            path = f"/mailFolders/{quoted(folder_id)}"
            select = "id,displayName,parentFolderId,totalItemCount"
        try:
            found = self._call("GET", path, params={"$select": select})
        except MailboxError as exc:
            cause = exc.__cause__
            if isinstance(cause, GraphError) and cause.status in (400, 404):
                raise folder_gone() from exc
            raise
        self._folder_cache[key] = self._folder_cache[(kind, str(found.get("id")))] = found
        return found

    def get_folder(self, folder_id: str, kind: Kind) -> FolderInfo:
        found = self._get_folder_json(kind, folder_id)
        if kind is Kind.CALENDAR:
            default = self._get_folder_json(kind, "calendar")
            if found["id"] == default["id"]:
                return FolderInfo(found["id"], found.get("name") or "Calendar", kind)
            return FolderInfo(found["id"], f"{default.get('name') or 'Calendar'}/"
                              f"{found.get('name') or ''}", kind, parent_id=default["id"])
        names = [found.get("displayName") or ""]
        if kind is Kind.CONTACTS:
            top = self._get_folder_json(kind, "contacts")["id"]
            parent = found.get("parentFolderId") if found["id"] != top else None
            while parent and len(names) < 64:
                above = self._get_folder_json(kind, parent)
                names.append(above.get("displayName") or "")
                parent = above.get("parentFolderId") if above["id"] != top else None
        else:
            top = self._get_folder_json(kind, "msgfolderroot")["id"]
            parent = found.get("parentFolderId")
            while parent and parent != top and len(names) < 64:
                above = self._get_folder_json(kind, parent)
                names.append(above.get("displayName") or "")
                parent = above.get("parentFolderId")
        total = found.get("totalItemCount")
        return FolderInfo(found["id"], "/".join(reversed(names)), kind,
                          parent_id=found.get("parentFolderId") or "",
                          total=int(total) if isinstance(total, int) else None)

    def list_folders(self, kind: Kind) -> list[FolderInfo]:
        result: list[FolderInfo] = []
        if kind is Kind.CALENDAR:
            default = self._get_folder_json(kind, "calendar")
            name = default.get("name") or "Calendar"
            with self._errors():
                for page in self.client.pages(f"{self.client.user}/calendars",
                                              {"$select": "id,name", "$top": 100}):
                    for calendar in page.get("value") or []:
                        if calendar["id"] == default["id"]:
                            result.append(FolderInfo(calendar["id"], name, kind))
                        else:
                            result.append(FolderInfo(calendar["id"],
                                                     f"{name}/{calendar.get('name') or ''}", kind,
                                                     parent_id=default["id"]))
            return sorted(result, key=lambda f: f.path.lower())
        if kind is Kind.CONTACTS:
            top = self._get_folder_json(kind, "contacts")
            result.append(FolderInfo(top["id"], top.get("displayName") or "Contacts", kind,
                                     parent_id=top.get("parentFolderId") or ""))
            base, children = "/contactFolders", [(top["id"], result[0].path)]
            select = "id,displayName,parentFolderId"
        else:
            root = self._get_folder_json(kind, "msgfolderroot")
            base, children = "/mailFolders", [(root["id"], "")]
            select = "id,displayName,parentFolderId,totalItemCount,childFolderCount"
        while children:
            parent_id, parent_path = children.pop()
            with self._errors():
                for page in self.client.pages(
                        f"{self.client.user}{base}/{quoted(parent_id)}/childFolders",
                        {"$select": select, "$top": 100}):
                    for folder in page.get("value") or []:
                        path = f"{parent_path}/{folder.get('displayName') or ''}".lstrip("/")
                        total = folder.get("totalItemCount")
                        result.append(FolderInfo(folder["id"], path, kind,
                                                 parent_id=folder.get("parentFolderId") or "",
                                                 total=total if isinstance(total, int) else None))
                        if folder.get("childFolderCount", 1):
                            children.append((folder["id"], path))
        return sorted(result, key=lambda f: f.path.lower())

    def categories(self) -> list[Category]:
        """The master category list (`/outlook/masterCategories`). Reading it needs the
        application permission MailboxSettings.Read, which the sync itself does not: an app
        without it is told so rather than sent to look for a consent it has."""
        found: list[Category] = []
        try:
            with self._errors():
                for page in self.client.pages(f"{self.client.user}/outlook/masterCategories"):
                    for entry in page.get("value") or []:
                        name = str(entry.get("displayName") or "").strip()
                        if name:
                            found.append(Category(name, str(entry.get("color") or "none")
                                                  .lower()))
        except MailboxError as exc:
            cause = exc.__cause__
            if isinstance(cause, GraphError) and cause.status == 403:
                raise MailboxError(
                    f"The application {self.access.client_id!r} may not read the category list "
                    f"of {self.access.mailbox}: grant it the application permission "
                    "MailboxSettings.Read (with admin consent).") from exc
            raise
        return by_name(found)
