"""The attachment store: saving attachments of imported e-mails on the company share.

The e-mail import hands each attachment to `AttachmentStore.save` (a file, as a stream) or
`AttachmentStore.save_eml` (an attached e-mail, written by the mailbox backend) and records the
returned `SavedFile` as a CRM document. Nothing here knows Exchange or the CRM.

Layout: `<directory>/<YYYY>/<MM>/<aa>/<safe name>`, where `aa` are the first two hex digits of
the content's SHA-256. Year and month let a person find an attachment by when it came and keep
old months untouched; the 256 buckets keep every folder small (a million files a month is
about 4,000 per folder, which Explorer and `ls` still handle) and spread the everyday names
(`image001.png`, `faktura.pdf`) so that `name (2).pdf` suffixes stay rare. The month is the
one of `received` as given: pass it in the organization's local time.

Bookkeeping lives in folders whose names start with a dot, which no safe file name does:
- `.incoming/` holds the file being written. It is in the store, on the same file system,
  so the finished file is linked into place atomically; after a crash (power cut, killed
  process) a stale `*.part` may remain there and can be deleted.
- `.sha256/<aa>/<sha256>` holds the store's owner and the relative path of the file with that
  content, so the same content arriving again (the same PDF in every reply of a thread) is
  stored once, across runs and without a database. Before a stored file is reused it is
  hashed again: a person may have edited or deleted it on the share since. Two imports saving
  the same new content at the same moment may both store it; nothing is lost, one copy is
  simply not shared.
- The owner (the e-mail import passes its organization) keeps de-duplication from crossing
  organizations: an entry another owner wrote is never followed, so a store is never handed,
  and never names, a file it did not save itself — not even where a folder once used by one
  organization has since been given to another. Entries without an owner (written before
  there were owners) are not followed either; the content is stored once more.

Safety: the directory must resolve inside an approved root; every folder below it is opened
with O_NOFOLLOW relative to its parent, and files are created with O_EXCL, so a symbolic link
planted in the store is refused, never followed. Any OSError removes what was written and
becomes a `StorageError` in plain words; the import records it and retries the e-mail on the
next run. A `TooLarge` attachment is skipped for good: retrying would not make it smaller.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, cast

from django.core.exceptions import ValidationError

from mailimport.filenames import numbered_filename, real_extension, safe_filename
from profiles.validation import check_inside_roots

CHUNK = 1024 * 1024
INCOMING = ".incoming"
INDEX = ".sha256"
NAME_LENGTH = 150  # UTF-8 bytes; leaves room for the folder path on Windows clients
MAX_NUMBER = 9999  # `name (9999).pdf` in one bucket of one month means something is wrong

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
# linkat() fails with these where the share has no hard links (some SMB servers); the store
# then claims the name with an empty O_EXCL file and renames over it.
_NO_HARD_LINKS = frozenset(
    [errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS]
)
# fsync() of a folder is refused by some network file systems; the data itself is synced.
_NO_DIRECTORY_SYNC = frozenset([errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF])


@dataclass(frozen=True)
class SavedFile:
    relative_path: str  # below the store's directory, "/"-separated
    size: int
    sha256: str
    deduplicated: bool  # the same content was already stored: this is that file


class StorageError(Exception):
    """The share could not be written; nothing partial was left. Retry on the next run."""

    def __init__(self, message: str, *, errno: int | None = None, directory: str = "") -> None:
        super().__init__(message)
        self.errno = errno
        self.directory = directory


class TooLarge(Exception):
    """The attachment exceeds the limit; the part read was discarded. Do not retry."""

    def __init__(self, size_seen: int, limit: int) -> None:
        super().__init__(
            f"The attachment is larger than the limit of {_megabytes(limit)}: saving stopped "
            f"after {size_seen} bytes."
        )
        self.size_seen = size_seen
        self.limit = limit


class AttachmentStore:
    def __init__(self, directory: Path | str, roots: Iterable[Path | str],
                 *, owner: str, name_length: int = NAME_LENGTH) -> None:
        if not owner or "\n" in owner:
            raise ValueError(f"An attachment store's owner is one non-empty line: {owner!r}")
        self.owner = owner
        approved = [str(r) for r in roots if str(r)]
        try:
            resolved = check_inside_roots(str(directory), approved)
        except ValidationError as exc:
            raise StorageError(" ".join(exc.messages), directory=str(directory)) from None
        self.directory = Path(resolved)
        # The approved root the directory lies in: the CRM document records its path below it.
        self.root = next(
            Path(real) for real in map(os.path.realpath, approved)
            if self.directory.is_relative_to(real)
        )
        self.name_length = name_length

    def save(self, stream: BinaryIO, original_name: str, received: datetime,
             max_bytes: int | None) -> SavedFile:
        """Store a file attachment, read from `stream` in chunks."""

        def copy(sink: BinaryIO) -> None:
            while chunk := stream.read(CHUNK):
                sink.write(chunk)

        return self._store(copy, safe_filename(original_name, self.name_length), received,
                           max_bytes)

    def save_eml(self, writer: Callable[[BinaryIO], object], original_name: str,
                 received: datetime, max_bytes: int | None) -> SavedFile:
        """Store an attached e-mail that `writer` writes as MIME into the file it is given:
        `lambda sink: backend.write_item_attachment(item, attachment.ref, sink)`."""
        name = safe_filename(original_name, self.name_length)
        if real_extension(name) != "eml":
            # An attached e-mail is named by its subject: `.eml` is added, nothing replaced.
            name = safe_filename(f"{name}.eml", self.name_length)
        return self._store(writer, name, received, max_bytes)

    def _store(self, fill: Callable[[BinaryIO], object], name: str, received: datetime,
               max_bytes: int | None) -> SavedFile:
        try:
            with ExitStack() as stack:
                store = stack.enter_context(self._open_store())
                incoming = stack.enter_context(_folder(store, INCOMING))
                with _temporary_file(incoming, max_bytes) as sink:
                    _fill(fill, sink)
                    sink.finish()
                    digest, size = sink.sha256.hexdigest(), sink.size
                    existing = self._find(store, digest, size)
                    if existing:
                        return SavedFile(existing, size, digest, deduplicated=True)
                    parts = [f"{received.year:04d}", f"{received.month:02d}", digest[:2]]
                    self._check_inside(parts)
                    bucket = stack.enter_context(_folders(store, parts))
                    final = self._link(incoming, sink.name, bucket, name)
                relative = "/".join([*parts, final])
                try:
                    _sync_folder(bucket)
                    self._remember(store, incoming, digest, relative)
                except BaseException:
                    # Unrecorded, the file would be an orphan that the retry stores again.
                    _unlink_quietly(final, bucket)
                    raise
                return SavedFile(relative, size, digest, deduplicated=False)
        except _SourceFailed as failed:
            # Reading the attachment failed (e.g. Exchange dropped the connection): that is
            # the mailbox's error to report, not the share's.
            raise failed.error from None
        except OSError as exc:
            raise _storage_error(exc, self.directory) from exc

    @contextmanager
    def _open_store(self) -> Iterator[int]:
        # Resolved when the store was made, so the path itself has no links to follow.
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory, _DIRECTORY_FLAGS)
        try:
            yield fd
        finally:
            os.close(fd)

    def _check_inside(self, parts: list[str]) -> None:
        # Opening each folder with O_NOFOLLOW already guarantees this; checking the resolved
        # path first turns a planted link into a clear message.
        path = self.directory.joinpath(*parts)
        if not Path(os.path.realpath(path)).is_relative_to(self.directory):
            raise StorageError(
                f"{path} leads outside the attachment directory (a symbolic link?); "
                f"nothing was saved.",
                errno=errno.ELOOP, directory=str(self.directory),
            )

    def _link(self, incoming: int, temp_name: str, bucket: int, name: str) -> str:
        """Give the finished file its final name, next to others but never over one."""
        place = _hard_link
        number = 1
        while number <= MAX_NUMBER:
            candidate = name if number == 1 else numbered_filename(name, number,
                                                                   self.name_length)
            try:
                place(incoming, temp_name, bucket, candidate)
                return candidate
            except FileExistsError:
                number += 1
            except OSError as exc:
                if place is not _hard_link or exc.errno not in _NO_HARD_LINKS:
                    raise
                place = _claim_and_rename
        raise StorageError(
            f"More than {MAX_NUMBER} different files are named “{name}” in one folder of "
            f"{self.directory}; nothing was saved.", directory=str(self.directory),
        )

    def _find(self, store: int, digest: str, size: int) -> str | None:
        """The stored file with this content, if the index knows one and it is unchanged."""
        try:
            with _folders(store, [INDEX, digest[:2]], create=False) as index:
                entry = _read_regular(index, digest, limit=4096).decode()
            owner, separator, relative = entry.partition("\n")
            if not separator or owner != self.owner:
                return None
            parts = relative.split("/")
            if len(parts) != 4 or any(part in ("", ".", "..") for part in parts):
                return None
            with _folders(store, parts[:-1], create=False) as folder:
                content = _read_regular(folder, parts[-1], hash_only=True)
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError, ValueError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None
            raise
        return relative if content == f"{size}:{digest}".encode() else None

    def _remember(self, store: int, incoming: int, digest: str, relative: str) -> None:
        # Not synced to disk (no fsync of the entry or its folder): the index is only a hint,
        # checked against the stored file's content before use, so an entry lost or garbled by
        # a crash costs one extra copy, never a wrong file. Its two disk syncs per attachment
        # were a third of an import run's time (bench/mail.py).
        with _folders(store, [INDEX, digest[:2]]) as index, \
                _temporary_file(incoming, None) as sink:
            sink.write(f"{self.owner}\n{relative}".encode())
            sink.close()
            os.replace(sink.name, digest, src_dir_fd=incoming, dst_dir_fd=index)


class MeteredSink(io.RawIOBase):
    """Where an attachment's bytes go: counts, hashes and enforces the size limit as they
    arrive; `_put` stores them (a local file here, a file on a share in smb_store.py). An
    error of a kind in `failures` is kept, so that a writer wrapping or swallowing it cannot
    hide it."""

    failures: tuple[type[Exception], ...] = (OSError,)

    def __init__(self, max_bytes: int | None) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.failure: Exception | None = None

    def writable(self) -> bool:
        return True

    # typeshed types the argument as any buffer; the callers here pass bytes.
    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.failure:
            raise self.failure
        view = memoryview(data).cast("B")
        length = len(view)
        size = self.size + length
        if self.max_bytes is not None and size > self.max_bytes:
            self.failure = TooLarge(size, self.max_bytes)
            raise self.failure
        self.sha256.update(view)
        try:
            self._put(view)
        except self.failures as exc:
            self.failure = exc
            raise
        self.size = size
        return length

    def _put(self, view: memoryview) -> None:
        raise NotImplementedError


class _Sink(MeteredSink):
    """The temporary file in `.incoming`."""

    def __init__(self, fd: int, name: str, max_bytes: int | None) -> None:
        super().__init__(max_bytes)
        self.fd = fd
        self.name = name

    def _put(self, view: memoryview) -> None:
        while view:
            view = view[_write(self.fd, view):]

    def finish(self) -> None:
        """Make the bytes durable before the file gets its name: a power cut must not leave a
        named but empty attachment."""
        os.fsync(self.fd)
        self.close()

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


class _SourceFailed(Exception):
    def __init__(self, error: BaseException) -> None:
        self.error = error


# The one call that writes attachment bytes; tests replace it to simulate a full share.
_write = os.write


def _fill(fill: Callable[[BinaryIO], object], sink: _Sink) -> None:
    try:
        fill(cast(BinaryIO, sink))
    except Exception as exc:
        if sink.failure:
            raise sink.failure from None
        raise _SourceFailed(exc) from exc
    if sink.failure:
        raise sink.failure


@contextmanager
def _temporary_file(incoming: int, max_bytes: int | None) -> Iterator[_Sink]:
    name = f"{secrets.token_hex(16)}.part"
    sink = _Sink(os.open(name, _NEW_FILE_FLAGS, 0o666, dir_fd=incoming), name, max_bytes)
    try:
        yield sink
    finally:
        sink.close()
        _unlink_quietly(name, incoming)  # gone already once renamed; a hard link leaves it


@contextmanager
def _folder(parent: int, name: str, create: bool = True) -> Iterator[int]:
    if create:
        # Made earlier, or by another import at the same moment: either way it is opened below.
        with suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=parent)
    fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def _folders(parent: int, names: list[str], create: bool = True) -> Iterator[int]:
    with ExitStack() as stack:
        fd = parent
        for name in names:
            fd = stack.enter_context(_folder(fd, name, create))
        yield fd


def _read_regular(folder: int, name: str, *, limit: int = 0, hash_only: bool = False) -> bytes:
    """A small file's bytes, or `b"<size>:<sha256>"` of a file of any size.

    O_NONBLOCK because a FIFO planted in the store would otherwise block the import forever.
    """
    fd = os.open(name, _READ_FLAGS | os.O_NONBLOCK, dir_fd=folder)
    with open(fd, "rb", closefd=True) as file:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError(f"{name} is not a regular file")
        if not hash_only:
            return file.read(limit)
        digest = hashlib.sha256()
        while chunk := file.read(CHUNK):
            digest.update(chunk)
        return f"{status.st_size}:{digest.hexdigest()}".encode()


def _hard_link(incoming: int, temp_name: str, bucket: int, name: str) -> None:
    os.link(temp_name, name, src_dir_fd=incoming, dst_dir_fd=bucket, follow_symlinks=False)


def _claim_and_rename(incoming: int, temp_name: str, bucket: int, name: str) -> None:
    os.close(os.open(name, _NEW_FILE_FLAGS, 0o666, dir_fd=bucket))
    try:
        # rename() replaces the claimed entry itself, never what it might have become a link to.
        os.replace(temp_name, name, src_dir_fd=incoming, dst_dir_fd=bucket)
    except BaseException:
        _unlink_quietly(name, bucket)
        raise


def _sync_folder(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_DIRECTORY_SYNC:
            raise


def _unlink_quietly(name: str, folder: int) -> None:
    # Cleanup after a failure: the failure is what gets reported, not a second error here.
    with suppress(OSError):
        os.unlink(name, dir_fd=folder)


def _storage_error(exc: OSError, directory: Path) -> StorageError:
    messages = {
        errno.ENOSPC: "The share is full: there is no space left to save attachments in {}.",
        errno.EDQUOT: "The disk quota on the share is used up: attachments cannot be saved "
                      "in {}.",
        errno.EACCES: "No permission to write to {}: give the sync server's account write "
                      "access to it.",
        errno.EPERM: "No permission to write to {}: give the sync server's account write "
                     "access to it.",
        errno.EROFS: "The share is read-only: attachments cannot be saved in {}.",
        errno.ENOTDIR: "Something other than a folder (a file or a symbolic link) is in the "
                       "way in {}; links are not followed, so nothing was saved.",
        errno.ELOOP: "A symbolic link is in the way in {}; links are not followed, so nothing "
                     "was saved.",
        errno.ENAMETOOLONG: "The path is too long for the share in {}.",
        errno.ENOENT: "{} is not available: is the share mounted?",
        errno.ESTALE: "{} is not available: is the share mounted?",
    }
    template = messages.get(exc.errno or 0)
    message = (template.format(directory) if template else
               f"Could not save the attachment in {directory}: {exc.strerror or exc}.")
    return StorageError(message, errno=exc.errno, directory=str(directory))


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.3g} MB" if size >= 2**20 else f"{size} bytes"
