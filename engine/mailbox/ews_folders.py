"""The EWS backend's folders: listing, describing, the category list, the whole mailbox's tree."""

from __future__ import annotations

from typing import Any

from exchangelib import errors as exchange_errors
from exchangelib.properties import UserConfigurationNameMNS
from exchangelib.services import GetUserConfiguration

from engine.mailbox import category_list
from engine.mailbox.base import Category, FolderInfo, FolderNotFound, MailboxError, ServerInfo
from engine.mailbox.ews_connection import EwsConnection
from engine.mailbox.ews_errors import translate_error
from engine.mailbox.ews_mapping import FOLDER_CLASS_KIND
from engine.mailbox.ews_picker import PICKED_CLASS, PICKER_FIELDS, picker_facts
from engine.mailbox.ews_services import (
    FOLDER_FIELDS,
    RawFindFolder,
    RawGetFolder,
    folder_facts,
    local_name,
)
from engine.records import Kind


class EwsFolders(EwsConnection):
    """EwsMailbox's folders and category list."""

    def check(self) -> ServerInfo:
        # Opening the mailbox's top folder proves sign-in, impersonation and the mailbox.
        self._describe("msgfolderroot")
        version = self.account.version
        return ServerInfo(version=f"{version.api_version} ({version.build})",
                          mailbox=self.access.mailbox)

    def list_folders(self, kind: Kind) -> list[FolderInfo]:
        """The folders a user would pick for `kind`: of exactly the agenda's class, and neither
        hidden nor inside a hidden folder (Exchange keeps hidden contacts folders such as the
        Recipient Cache, of classes "IPF.Contact.*", under Contacts). One deep FindFolder."""
        with self._errors():
            found = list(RawFindFolder(account=self.account).call(
                folders=[self._folder("msgfolderroot")], additional_fields=PICKER_FIELDS,
                shape="IdOnly", depth="Deep"))
        for answer in found:
            if isinstance(answer, Exception):
                raise translate_error(answer, self.access)
        facts = {fact.id: fact for fact in map(picker_facts, found)}
        paths: dict[str, tuple[str, bool]] = {}   # id -> (display path, hidden here or above)

        def place(folder_id: str) -> tuple[str, bool]:
            fact = facts.get(folder_id)
            if fact is None:
                return "", False    # the top of the mailbox (or above it)
            if folder_id not in paths:
                paths[folder_id] = ("", True)   # a cycle would end here, hidden
                above, hidden_above = place(fact.parent_id)
                paths[folder_id] = ((above + "/" if above else "") + fact.name,
                                    hidden_above or fact.hidden)
            return paths[folder_id]

        result = []
        for fact in facts.values():
            path, hidden = place(fact.id)
            if not hidden and fact.element != "SearchFolder" \
                    and PICKED_CLASS.get(fact.folder_class or "IPF.Note") is kind:
                result.append(FolderInfo(id=fact.id, path=path, kind=kind,
                                         parent_id=fact.parent_id, total=fact.total))
        return sorted(result, key=lambda f: f.path.lower())

    def get_folder(self, folder_id: str, kind: Kind) -> FolderInfo:
        described = self._describe(folder_id)
        name = described.get("DisplayName") or folder_id
        folder_kind = FOLDER_CLASS_KIND.get(_base_class(described.get("FolderClass")))
        if folder_kind is not kind:
            raise FolderNotFound(f"The folder {name!r} does not hold {kind.value}.")
        total = described.get("TotalCount")
        return FolderInfo(id=folder_id, path=self._path(described), kind=folder_kind,
                          parent_id=described.get("ParentFolderId") or "",
                          total=int(total) if total and total.isdigit() else None)

    def count_items(self, folder: FolderInfo) -> int | None:
        total = self._describe(folder.id).get("TotalCount")
        return int(total) if total and total.isdigit() else None

    def _path(self, described: dict[str, Any]) -> str:
        """The display path from the top of the mailbox ("Contacts/CRM"), as list_folders
        gives it: one GetFolder per level, since a profile stores only the folder's id."""
        top = self._describe("msgfolderroot").get("FolderId")
        names = [described.get("DisplayName") or ""]
        parent = described.get("ParentFolderId")
        while parent and parent != top and len(names) < 64:
            above = self._describe(parent)
            names.append(above.get("DisplayName") or "")
            parent = above.get("ParentFolderId")
        return "/".join(reversed(names))

    def categories(self) -> list[Category]:
        """Outlook keeps the master category list in the default calendar's "CategoryList"
        configuration (one GetUserConfiguration, XmlData only). A mailbox whose list Outlook
        never saved has no such configuration: Exchange answers ErrorItemNotFound."""
        name = UserConfigurationNameMNS(name="CategoryList", folder=self._folder_id("calendar"))
        try:
            with self._errors():
                answer = GetUserConfiguration(account=self.account).get(
                    user_configuration_name=name, properties="XmlData")
        except MailboxError as exc:
            if isinstance(exc.__cause__, exchange_errors.ErrorItemNotFound):
                return []
            raise
        if not answer.xml_data:
            return []
        try:
            return category_list.parse(answer.xml_data)
        except category_list.CategoryListUnreadable as exc:
            raise MailboxError("The mailbox's category list is damaged and cannot be read; "
                               "Outlook rewrites it when a category is added or changed.") \
                from exc

    def _mailbox_folders(self) -> dict[str, tuple[str, bool]]:
        """Every folder of the mailbox (the top of it included, search folders not): its
        display path and whether it lies in Deleted Items. Read once per backend object (one
        run): a GetFolder for the top and Deleted Items, and a deep FindFolder."""
        if self._folders is not None:
            return self._folders
        with self._errors():
            tops = list(RawGetFolder(account=self.account).call(
                folders=[self._folder_id("msgfolderroot"), self._folder_id("deleteditems")],
                additional_fields=FOLDER_FIELDS, shape="IdOnly"))
            below = list(RawFindFolder(account=self.account).call(
                folders=[self._folder("msgfolderroot")], additional_fields=FOLDER_FIELDS,
                shape="IdOnly", depth="Deep"))
        for answer in (*tops, *below):
            if isinstance(answer, Exception):
                raise translate_error(answer, self.access)
        (root, root_name, _), (trash, _, _) = (folder_facts(top) for top in tops)
        parents: dict[str, tuple[str, str]] = {}   # id -> (name, parent id)
        for element in below:
            if local_name(element) != "SearchFolder":
                folder_id, name, parent = folder_facts(element)
                parents[folder_id] = (name, parent)
        folders = {root: (root_name, False)}
        for folder_id in parents:
            names, deleted, current = [], False, folder_id
            while current in parents and len(names) < 64:
                deleted = deleted or current == trash
                names.append(parents[current][0])
                current = parents[current][1]
            folders[folder_id] = ("/".join(reversed(names)), deleted)
        self._folders = folders
        return folders


def _base_class(folder_class: str | None) -> str:
    # "IPF.Contact.MOC.QuickContacts" is a contacts folder too; a mail folder may have no class.
    if not folder_class:
        return "IPF.Note"
    parts = folder_class.split(".")
    return ".".join(parts[:2])
