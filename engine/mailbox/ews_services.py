"""exchangelib's services as the EWS backend calls them: answers parsed in one piece, a result
per item (errors of the whole mailbox raised as usual), IdOnly changes read straight from the
XML, folders answered as XML elements and named by their id alone."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Any, NamedTuple

from exchangelib import Account, FileAttachment
from exchangelib import errors as exchange_errors
from exchangelib.fields import FieldPath
from exchangelib.folders import Folder
from exchangelib.properties import ItemId
from exchangelib.services import (
    CreateItem,
    DeleteItem,
    FindFolder,
    GetAttachment,
    GetFolder,
    GetItem,
    MoveItem,
    SyncFolderItems,
    UpdateItem,
)

# Errors that concern the mailbox or the server, not one item: raised (and retried) as usual.
_MAILBOX_WIDE = (exchange_errors.ErrorServerBusy, exchange_errors.ErrorTimeoutExpired,
                 exchange_errors.ErrorTooManyObjectsOpened,
                 exchange_errors.ErrorInternalServerTransientError,
                 exchange_errors.ErrorMailboxStoreUnavailable,
                 exchange_errors.ErrorMailboxMoveInProgress,
                 exchange_errors.ErrorImpersonateUserDenied,
                 exchange_errors.ErrorNonExistentMailbox,
                 exchange_errors.ErrorExceededConnectionCount)


class _LoadedAnswer:
    """An answer already read into memory, handed to the XML parser in one piece."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    def iter_content(self) -> bytes:
        return self.content   # exchangelib's to_xml() parses bytes directly


class _WholeAnswer:
    """exchangelib parses every answer from `response.iter_content()`, whose default chunk
    is one byte: a Python call per byte, most of the client's time on a big GetItem answer
    (a first sync reads megabytes; bench/). The answers of these services are not streamed,
    so they are in memory already: parse them in one piece."""

    @classmethod
    def _get_soap_parts(cls, response: Any) -> Any:
        content = getattr(response, "content", None)
        if isinstance(content, bytes):
            response = _LoadedAnswer(content)
        return super()._get_soap_parts(response)  # type: ignore[misc]


class _ChangedId(NamedTuple):
    """An item of an IdOnly SyncFolderItems answer: all read_changes() asks of it."""

    id: str
    changekey: str | None


class SyncFolderItemIds(_WholeAnswer, SyncFolderItems):
    def _elem_to_obj(self, elem: Any) -> Any:
        # An IdOnly change holds the item's id alone: read it straight from the element.
        # exchangelib builds a whole item of ~100 empty fields for each, a third of the
        # reading of a first calendar import (bench/calendar.py). Anything more (the receipt
        # time mail asks) goes the usual way.
        if self.change_types_map[elem.tag] in (self.CREATE, self.UPDATE) and len(elem) \
                and len(elem[0]) == 1 and elem[0][0].tag == ItemId.response_tag():
            return self.change_types_map[elem.tag], _ChangedId(
                elem[0][0].get("Id"), elem[0][0].get("ChangeKey"))
        return super()._elem_to_obj(elem)


class _PerItem(_WholeAnswer):
    ERRORS_TO_CATCH_IN_RESPONSE = exchange_errors.ResponseMessageError

    def _get_element_container(self, message: Any, name: Any = None) -> Any:
        result = super()._get_element_container(message, name)  # type: ignore[misc]
        if isinstance(result, _MAILBOX_WIDE):
            raise result
        return result


class PerItemCreate(_PerItem, CreateItem):
    pass


class PerItemUpdate(_PerItem, UpdateItem):
    pass


class PerItemDelete(_PerItem, DeleteItem):
    pass


class PerItemGet(_PerItem, GetItem):
    pass


class PerItemMove(_PerItem, MoveItem):
    pass


class NotAFile(Exception):
    """GetAttachment answered with an attached item where a file's content was asked."""


class AttachmentContents(_PerItem, GetAttachment):
    """GetAttachment of many attachments in one request, each answered with its content as
    bytes (or the exception of that attachment alone). The bytes are read straight from the
    element: exchangelib's FileAttachment would ask the server again for an empty file's
    content, since it tells "not read yet" from "empty" by None alone."""

    def _get_soap_parts(self, response: Any) -> Any:
        # GetAttachment's is a method of the instance (it streams): _WholeAnswer's classmethod
        # cannot stand in for it, so the answer is handed over in one piece here.
        content = getattr(response, "content", None)
        return GetAttachment._get_soap_parts(
            self, _LoadedAnswer(content) if isinstance(content, bytes) else response)

    def _elem_to_obj(self, elem: Any) -> Any:
        if elem.tag != FileAttachment.response_tag():
            return NotAFile("This attachment is an attached item, not a file.")
        content = elem.find(FileAttachment.get_field_by_fieldname("_content").response_tag())
        try:
            return base64.b64decode(content.text or "") \
                if content is not None else b""
        except binascii.Error as exc:
            return exc


class RawGetFolder(GetFolder):
    """GetFolder answering with the XML elements: parsing them into folder objects would need
    the mailbox's root folder, which costs requests of its own."""

    def _elems_to_objs(self, elems: Any) -> Iterator[Any]:
        yield from elems


class RawFindFolder(FindFolder):
    """FindFolder answering with the XML elements, as RawGetFolder does (FindFolder's own
    call asks for the root folder first)."""

    def call(self, folders: Any, additional_fields: Any, shape: Any,  # type: ignore[override]
             depth: Any) -> Iterator[Any]:
        return self._paged_call(payload_func=self.get_payload, max_items=None, folders=folders,
                                additional_fields=additional_fields, restriction=None,
                                shape=shape, depth=depth, page_size=self.page_size, offset=0)


FOLDER_FIELDS = {FieldPath(field=Folder.get_field_by_fieldname(name))
                  for name in ("name", "folder_class", "total_count", "parent_folder_id")}


def folder_facts(element: Any) -> tuple[str, str, str]:
    """A folder element's id, display name and parent's id."""
    facts = {local_name(child): child.text or child.get("Id") or "" for child in element
             if isinstance(child.tag, str)}
    return facts.get("FolderId", ""), facts.get("DisplayName", ""), \
        facts.get("ParentFolderId", "")


def local_name(element: Any) -> str:
    return str(element.tag).rsplit("}", 1)[-1]


class IdFolder(Folder):
    """A folder known only by its id: requests can name it without fetching it first."""

    __slots__ = ("_account_ref", "_folder_id")

    def __init__(self, account: Account, folder_id: Any) -> None:
        super().__init__(id=getattr(folder_id, "id", None), changekey=None)
        self._account_ref = account
        self._folder_id = folder_id

    @property
    def account(self) -> Account:
        return self._account_ref

    @property
    def root(self) -> Any:
        return self._account_ref.root

    def to_id(self) -> Any:
        return self._folder_id
