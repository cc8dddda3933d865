"""Contact photos and e-mail attachments through EWS."""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, BinaryIO

from exchangelib import FileAttachment, ItemAttachment, Message
from exchangelib.attachments import AttachmentId
from exchangelib.properties import ItemId

from engine.mailbox.base import BATCH_SIZE, ItemRef, MailboxError, WriteResult, WriteStatus
from engine.mailbox.ews_connection import EwsConnection
from engine.mailbox.ews_errors import translate_error
from engine.mailbox.ews_mapping import field_paths
from engine.mailbox.ews_services import AttachmentContents, NotAFile, PerItemGet
from engine.mailbox.streams import server_stream
from engine.mailbox.wording import short
from engine.records import Kind


class EwsAttachments(EwsConnection):
    """EwsMailbox's contact photos and e-mail attachments."""

    def _get_one(self, ref: ItemRef, kind: Kind, fields: tuple[str, ...]) -> Any:
        with self._errors():
            results = list(PerItemGet(account=self.account, chunk_size=1).call(
                items=[ItemId(ref.id)], additional_fields=field_paths(kind, fields),
                shape="IdOnly"))
        if not results or isinstance(results[0], Exception):
            raise MailboxError(f"The item is not in the mailbox any more: {results[:1]}")
        return results[0]

    def read_photo(self, ref: ItemRef) -> bytes | None:
        contact = self._get_one(ref, Kind.CONTACTS, ("attachments",))
        for attachment in contact.attachments or []:
            if isinstance(attachment, FileAttachment) and attachment.is_contact_photo:
                with self._errors():
                    return attachment.content
        return None

    def set_photo(self, ref: ItemRef, photo: bytes | None) -> WriteResult:
        contact = self._get_one(ref, Kind.CONTACTS, ("attachments",))
        with self._errors():
            for attachment in list(contact.attachments or []):
                if isinstance(attachment, FileAttachment) and attachment.is_contact_photo:
                    contact.detach(attachment)
            token = ""
            if photo:
                picture = FileAttachment(name="ContactPicture.jpg", content=photo,
                                         is_contact_photo=True)
                contact.attach(picture)
                token = picture.attachment_id.id if picture.attachment_id else ""
        return WriteResult(WriteStatus.OK, ItemRef(contact.id, contact.changekey or ""),
                           token=token)

    def _attachment(self, item: ItemRef, attachment_ref: str) -> Any:
        message = self._get_one(item, Kind.MAIL, ("attachments",))
        for attachment in message.attachments or []:
            attachment_id = attachment.attachment_id
            if attachment_id is not None and attachment_id.id == attachment_ref:
                return attachment
        raise MailboxError("The attachment is not on the e-mail any more.")

    def open_attachment(self, item: ItemRef,
                        attachment_ref: str) -> AbstractContextManager[BinaryIO]:
        # Built from the id the read gave, not looked up with a GetItem of the message first:
        # streaming needs only the id and the account, and the lookup was a second request
        # per attachment (half of an import run's requests). An attachment gone meanwhile
        # fails on GetAttachment instead, as a MailboxError all the same.
        attachment = FileAttachment(attachment_id=AttachmentId(id=attachment_ref),
                                    parent_item=Message(account=self.account, id=item.id))

        return server_stream(attachment.fp, self._errors)

    def read_attachments(self, wanted: Sequence[tuple[ItemRef, str]]
                         ) -> list[bytes | MailboxError]:
        # One GetAttachment for up to 100 of them, as Exchange takes them: a message with two
        # small attachments cost two requests when each was streamed on its own.
        if not wanted:
            return []
        with self._errors():
            results = list(AttachmentContents(account=self.account, chunk_size=BATCH_SIZE).call(
                items=[AttachmentId(id=ref) for _, ref in wanted], include_mime_content=False,
                body_type=None, filter_html_content=None, additional_fields=None))
        if len(results) != len(wanted):
            raise MailboxError(f"GetAttachment answered {len(results)} of {len(wanted)} "
                               "attachments.")
        return [result if isinstance(result, bytes) else
                MailboxError(f"The attachment could not be read: {short(str(result))}")
                if isinstance(result, NotAFile | binascii.Error) else
                translate_error(result, self.access) for result in results]

    def write_item_attachment(self, item: ItemRef, attachment_ref: str, sink: BinaryIO) -> int:
        attachment = self._attachment(item, attachment_ref)
        if not isinstance(attachment, ItemAttachment):
            raise MailboxError("This attachment is a file, not an attached item.")
        with self._errors():
            inner = attachment.item
        mime = inner.mime_content if inner is not None else None
        if not mime:
            raise MailboxError("The attached item has no MIME content to save.")
        data = mime if isinstance(mime, bytes) else str(mime).encode()
        sink.write(data)
        return len(data)
