"""A server's download as a stream whose failures are told apart from the reader's own."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, BinaryIO, cast

ErrorsOf = Callable[[], AbstractContextManager[Any]]


class _ServerReads(io.RawIOBase):
    """A server's byte stream whose reads turn the server's failures into MailboxError (by
    the backend's `errors` context); what the reader does with the bytes is not inside."""

    def __init__(self, raw: BinaryIO, errors: ErrorsOf) -> None:
        super().__init__()
        self._raw, self._errors = raw, errors

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with self._errors():
            return self._raw.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


@contextlib.contextmanager
def server_stream(opened: AbstractContextManager[BinaryIO], errors: ErrorsOf
                  ) -> Iterator[BinaryIO]:
    """`opened` (a download) as a stream for a backend's open_attachment: opening and reading
    it fail as MailboxError, while what the caller raises meanwhile (the share is full, the
    file is too large) reaches it as it was raised, not dressed up as the server's fault."""
    with contextlib.ExitStack() as stack:
        with errors():
            raw = stack.enter_context(opened)
        yield cast(BinaryIO, _ServerReads(raw, errors))
