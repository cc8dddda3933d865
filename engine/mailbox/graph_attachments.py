"""Contact photos and e-mail attachments through Graph."""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import BinaryIO

from engine.mailbox.base import ItemRef, MailboxError, WriteResult, WriteStatus
from engine.mailbox.graph_connection import GraphConnection, quoted
from engine.mailbox.graph_errors import GraphError, translate
from engine.mailbox.graph_http import CHUNK, BatchRequest, BatchResult
from engine.mailbox.streams import server_stream
from engine.mailbox.wording import GONE
from engine.records import Kind


class GraphAttachments(GraphConnection):
    """GraphMailbox's contact photos and e-mail attachments."""

    def read_photo(self, ref: ItemRef) -> bytes | None:
        try:
            with self._errors(), self.client.stream(
                    self._item_url(Kind.CONTACTS, ref.id, "/photo/$value")) as response:
                return b"".join(response.iter_content(CHUNK))
        except MailboxError as exc:
            if isinstance(exc.__cause__, GraphError) and exc.__cause__.status == 404:
                return None
            raise

    def set_photo(self, ref: ItemRef, photo: bytes | None) -> WriteResult:
        url = self._item_url(Kind.CONTACTS, ref.id, "/photo")
        with self._errors():
            if photo:
                self.client.put_bytes(url + "/$value", photo, "image/jpeg")
                meta = self.client.call("GET", url)
                token = str((meta or {}).get("@odata.mediaEtag") or (meta or {}).get("id")
                            or "photo")
            else:
                try:
                    self.client.call("DELETE", url + "/$value")
                except GraphError as exc:
                    if exc.status != 404:
                        raise
                token = ""
            current = self.client.call("GET", self._item_url(Kind.CONTACTS, ref.id),
                                       params={"$select": "id,changeKey"})
        return WriteResult(WriteStatus.OK, ItemRef(current["id"], current.get("changeKey") or ""),
                           token=token)

    def open_attachment(self, item: ItemRef,
                        attachment_ref: str) -> AbstractContextManager[BinaryIO]:
        url = self._item_url(Kind.MAIL, item.id, f"/attachments/{quoted(attachment_ref)}/$value")

        @contextlib.contextmanager
        def download() -> Iterator[BinaryIO]:
            with self.client.stream(url) as response:
                response.raw.decode_content = True
                yield response.raw   # type: ignore[misc]

        return server_stream(download(), self._errors)

    def read_attachments(self, wanted: Sequence[tuple[ItemRef, str]]
                         ) -> list[bytes | MailboxError]:
        # Those read with their messages (GraphReading) are handed out once; the others are
        # read each as its JSON (its content as contentBytes) in `$batch`es of 20.
        out: list[bytes | MailboxError | None] = [
            self._read_ahead.pop((item.id, ref), None) for item, ref in wanted]
        missing = [i for i, content in enumerate(out) if content is None]
        answers = self._batch([BatchRequest("GET", self._item_url(
            Kind.MAIL, wanted[i][0].id, f"/attachments/{quoted(wanted[i][1])}"))
            for i in missing])
        for i, answer in zip(missing, answers, strict=True):
            out[i] = self._content(answer)
        return [content for content in out if content is not None]

    def _content(self, answer: BatchResult) -> bytes | MailboxError:
        if answer.status == 404:
            return MailboxError(GONE)
        if not answer.ok:
            return translate(answer.error(), self.access)
        body = answer.body if isinstance(answer.body, dict) else {}
        if "contentBytes" not in body:
            return MailboxError("This attachment is an attached item, not a file.")
        try:
            return base64.b64decode(body["contentBytes"] or "", validate=True)
        except (binascii.Error, TypeError) as exc:
            return MailboxError(f"The attachment could not be read: {exc}")

    def write_item_attachment(self, item: ItemRef, attachment_ref: str, sink: BinaryIO) -> int:
        url = self._item_url(Kind.MAIL, item.id, f"/attachments/{quoted(attachment_ref)}/$value")
        written = 0
        with contextlib.ExitStack() as stack:
            with self._errors():
                response = stack.enter_context(self.client.stream(url))
            chunks = response.iter_content(CHUNK)
            # Only the download's failures are the mailbox's: the sink's (a full share)
            # reach the caller as they are.
            while True:
                with self._errors():
                    chunk = next(chunks, b"")
                if not chunk:
                    break
                sink.write(chunk)
                written += len(chunk)
        if not written:
            raise MailboxError("The attached item has no MIME content to save.")
        return written
