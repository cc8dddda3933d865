"""Per-request context: who is calling, whose mailbox, and id resolution helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from . import ids
from .ns import local, tq
from .soap import MessageError
from .store import Folder, Item, Principal, Store


@dataclass
class Context:
    store: Store
    principal: Principal
    mailbox: str                       # default mailbox (impersonated, anchor, or own)
    impersonating: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    server: Any = None                 # the EwsServer (settings, notification hub)
    secure: bool = False               # the request came over TLS
    response_headers: list[tuple[str, str]] = field(default_factory=list)   # e.g. Set-Cookie

    def may_open(self, address: str) -> bool:
        address = address.lower()
        if address == self.mailbox:
            return True
        if self.principal.user is not None:
            return self.principal.user.may_open(address)
        return self.principal.may_impersonate(address)

    def folder(self, el: etree._Element) -> Folder:
        """Resolve t:FolderId or t:DistinguishedFolderId, checking mailbox access."""
        kind = local(el)
        store = self.store
        if kind == "DistinguishedFolderId":
            address = el.findtext(f"{tq('Mailbox')}/{tq('EmailAddress')}") or self.mailbox
            if address.lower() not in store.mailboxes:
                raise MessageError("ErrorNonExistentMailbox")
            if not self.may_open(address):
                raise MessageError("ErrorAccessDenied")
            folder = store.folder_by_distinguished(address, el.get("Id", ""))
        else:
            folder_id = el.get("Id", "")
            problem = ids.id_problem(folder_id)
            if problem is not None:
                raise MessageError(problem)
            folder = store.folders.get(folder_id)
            if folder is not None and not self.may_open(folder.mailbox):
                raise MessageError("ErrorAccessDenied")
        if folder is None:
            raise MessageError("ErrorFolderNotFound")
        return folder

    def item(self, item_id: str) -> Item:
        # Exchange parses an id before looking it up: one it cannot parse is
        # ErrorInvalidIdMalformed, one that names nothing ErrorItemNotFound.
        problem = ids.id_problem(item_id)
        if problem is not None:
            raise MessageError(problem)
        item = self.store.items.get(item_id)
        if item is None or not self.may_open(item.mailbox):
            raise MessageError("ErrorItemNotFound")
        return item


def folder_id_elements(parent: etree._Element | None) -> list[etree._Element]:
    if parent is None:
        return []
    return [c for c in parent if isinstance(c.tag, str)
            and local(c) in ("FolderId", "DistinguishedFolderId")]
