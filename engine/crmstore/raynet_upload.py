"""A file as a `multipart/form-data` body (Raynet's `POST /fileUpload` takes it in the part
`file`), read from its stream as it is sent: an attachment of many megabytes is never held
in memory whole. Its length is known beforehand, so it goes with a Content-Length."""

from __future__ import annotations

import os
import secrets
from typing import BinaryIO

CHUNK = 64 * 1024


def _header_name(name: str) -> str:
    """The part's file name as browsers send it (HTML5): UTF-8, quotes and line breaks
    percent-encoded. The name the attachment shows is sent apart, in its JSON."""
    escaped = name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    return f'filename="{escaped or "file"}"'


class MultipartFile:
    """The body: a head, the file's bytes as they are read, a tail. Only `read` and a length:
    requests sends such an object as it reads it, with that Content-Length (an io class
    would offer `tell`, which requests would take for a position)."""

    def __init__(self, stream: BinaryIO, size: int, file_name: str,
                 content_type: str) -> None:
        self.boundary = secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self._head = (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                      f"{_header_name(file_name)}\r\nContent-Type: {content_type}\r\n\r\n"
                      ).encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._stream = stream
        self._size = size
        self._parts: list[bytes | BinaryIO] = [self._head, stream, self._tail]
        self._sent_of_file = 0

    def __len__(self) -> int:
        return len(self._head) + self._size + len(self._tail)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = CHUNK
        while self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                chunk, rest = part[:size], part[size:]
                if rest:
                    self._parts[0] = rest
                else:
                    self._parts.pop(0)
                if chunk:
                    return chunk
                continue
            chunk = part.read(min(size, CHUNK))
            if chunk:
                self._sent_of_file += len(chunk)
                if self._sent_of_file > self._size:
                    # The file grew since its size was taken: the Content-Length would lie.
                    raise OSError("the file changed while it was being sent")
                return chunk
            if self._sent_of_file != self._size:
                raise OSError("the file changed while it was being sent")
            self._parts.pop(0)
        return b""


def file_size(stream: BinaryIO) -> int:
    return os.fstat(stream.fileno()).st_size
