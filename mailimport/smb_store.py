"""The attachment store on a Windows (SMB) share, spoken to directly: no mount on the workers.

The same layout, bookkeeping and guarantees as the local store (mailimport/storage.py, whose
docstring describes them), with the share's own means:
- the file is written in chunks to `.incoming\\<random>.part` (created exclusively: never over
  anything), then renamed into its bucket; an SMB rename never replaces an existing name, so
  `name (2).pdf` is chosen exactly as locally, without a hard link;
- `.sha256\\<aa>\\<sha256>` holds the owner and the relative path of the file with that content,
  checked against the stored file's content before reuse. It is created before the file, only
  where no entry is (one request that both asks whether the content is stored and says where
  it will be), and removed again if the file then cannot be saved;
- a small file (most attachments) is created, written, renamed and closed in one compound
  request (mailimport/smb_compound.py): two round trips an attachment in all;
- every path is built here from the chosen folder (checked against the organization's roots:
  no `..`, nothing outside them) and names the server builds; the SMB server does not follow
  links outside its share, and a client cannot plant one;
- any error (the share full or read-only, the connection lost) removes what was written where
  that is still possible and becomes a `StorageError` in plain words; the import records it
  and retries the e-mail on the next run. A `.part` that could not be removed (the server went
  away) is only ever in `.incoming`, never under a final name.
"""

from __future__ import annotations

import errno
import hashlib
import secrets
from collections.abc import Callable, Iterable
from contextlib import ExitStack, suppress
from datetime import datetime
from pathlib import PureWindowsPath
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import smbclient
from django.core.exceptions import ValidationError
from smbclient._io import SMBFileTransaction, set_info
from smbprotocol.file_info import FileDispositionInformation, FileRenameInformation

from mailimport.filenames import numbered_filename, real_extension, safe_filename
from mailimport.smb_compound import WRITE_AND_DELETE, put_small_file
from mailimport.smb_connection import ShareConnection, translate
from mailimport.storage import (
    CHUNK,
    INCOMING,
    INDEX,
    MAX_NUMBER,
    NAME_LENGTH,
    MeteredSink,
    SavedFile,
    StorageError,
    TooLarge,
)
from profiles.share_paths import check_inside_share_roots, parse_share_path

if TYPE_CHECKING:
    from profiles.models import Organization


def organization_store(organization: Organization, directory: str) -> SmbAttachmentStore:
    """The store in `directory` on the organization's share, signed in as its share user; the
    connection is made when the first attachment is saved."""
    roots = organization.approved_attachment_roots()
    connection = ShareConnection(
        parse_share_path(roots[0]).server, organization.share_username,
        organization.share_password(), port=organization.share_port,
        require_encryption=organization.share_requires_encryption)
    return SmbAttachmentStore(directory, roots, connection, owner=str(organization.pk))


class SmbAttachmentStore:
    """`AttachmentStore`'s interface (save, save_eml, directory, root, owner, close)."""

    def __init__(self, directory: str, roots: Iterable[str], connection: ShareConnection,
                 *, owner: str, name_length: int = NAME_LENGTH) -> None:
        if not owner or "\n" in owner:
            raise ValueError(f"An attachment store's owner is one non-empty line: {owner!r}")
        self.owner = owner
        self.share = connection
        self.name_length = name_length
        approved = [r for r in roots if r]
        try:
            self.path = check_inside_share_roots(directory, approved)
        except ValidationError as exc:
            raise StorageError(" ".join(exc.messages), directory=directory) from None
        root = next(parse_share_path(r) for r in approved
                    if parse_share_path(r).contains(self.path))
        # Windows paths, so that the import records the document below its root as it does
        # for a local folder: `directory.relative_to(root) / relative_path`.
        self.root = PureWindowsPath(str(root))
        self.directory = self.root.joinpath(*self.path.below(root))
        # Folders this store made or found (a run saves many files into few folders): each
        # check is a round trip to the file server. Losing one to a person deleting it only
        # fails one save, which the next run retries with an empty set.
        self._folders: set[str] = set()

    def close(self) -> None:
        self.share.close()

    def save(self, stream: BinaryIO, original_name: str, received: datetime,
             max_bytes: int | None) -> SavedFile:
        def copy(sink: BinaryIO) -> None:
            while chunk := stream.read(CHUNK):
                sink.write(chunk)

        return self._store(copy, safe_filename(original_name, self.name_length), received,
                           max_bytes)

    def save_eml(self, writer: Callable[[BinaryIO], object], original_name: str,
                 received: datetime, max_bytes: int | None) -> SavedFile:
        name = safe_filename(original_name, self.name_length)
        if real_extension(name) != "eml":
            name = safe_filename(f"{name}.eml", self.name_length)
        return self._store(writer, name, received, max_bytes)

    # --- one attachment ---------------------------------------------------------------------
    def _store(self, fill: Callable[[BinaryIO], object], name: str, received: datetime,
               max_bytes: int | None) -> SavedFile:
        try:
            options = self.share.options()
            incoming = self.share.unc(self.path, INCOMING)
            self._makedirs(incoming, options)
            temp = f"{incoming}\\{secrets.token_hex(16)}.part"
            with ExitStack() as stack:
                # Opened only once more than one chunk has come: a small attachment (most
                # are) is written in one compound request once its content, and so its
                # name and whether it is stored already, are known.
                sink = _Sink(lambda: stack.enter_context(smbclient.open_file(
                    temp, "xb", buffering=0, desired_access=WRITE_AND_DELETE, **options)),
                    max_bytes)
                claimed = False
                try:
                    _fill(fill, sink)
                    digest, size = sink.sha256.hexdigest(), sink.size
                    parts = [f"{received.year:04d}", f"{received.month:02d}", digest[:2]]
                    # The index entry is created first, only where none is: the one request
                    # both asks whether this content is stored and says where it goes.
                    claimed = self._claim(digest, "/".join([*parts, name]), options)
                    if not claimed:
                        existing = self._find(digest, size, options)
                        if existing:
                            if sink.raw is not None:
                                _set_info(sink.raw, _delete_pending())
                            return SavedFile(existing, size, digest, deduplicated=True)
                    bucket = self.share.unc(self.path, *parts)
                    self._makedirs(bucket, options)
                    if sink.raw is None:
                        final = self._place_small(temp, bytes(sink.buffer), parts, name,
                                                  options)
                    else:
                        final = self._rename(sink.raw, parts, name)
                except BaseException:
                    if sink.raw is not None:
                        # Renamed through its own handle while still open (one round trip,
                        # not four); on any other way out deleted when that handle closes.
                        with suppress(Exception):   # the failure is what gets reported
                            _set_info(sink.raw, _delete_pending())
                    if claimed:
                        # The entry names a file that was not saved: only a hint, checked
                        # before use, but not left where it can be removed.
                        _remove_quietly(self._entry(digest), options)
                    raise
            relative = "/".join([*parts, final])
            if not claimed or final != name:
                try:
                    self._remember(digest, relative, options)
                except BaseException:
                    # Unrecorded, the file would be an orphan that the retry stores again.
                    _remove_quietly(f"{bucket}\\{final}", options)
                    raise
            return SavedFile(relative, size, digest, deduplicated=False)
        except _SourceFailed as failed:
            # Reading the attachment failed (Exchange dropped the connection): the mailbox's
            # error to report, not the share's.
            raise failed.error from None
        except (TooLarge, StorageError):
            raise
        except Exception as exc:
            self._folders.clear()   # one may have gone with what failed
            raise self._storage_error(exc) from exc

    def _makedirs(self, folder: str, options: dict[str, Any]) -> None:
        if folder not in self._folders:
            smbclient.makedirs(folder, exist_ok=True, **options)
            self._folders.add(folder)

    def _place_small(self, temp: str, data: bytes, parts: list[str], name: str,
                     options: dict[str, Any]) -> str:
        """Create, write, rename and close in one compound request. A failed write leaves
        nothing under the final name (put_small_file); the `.part` left is removed, or stays
        in `.incoming` only."""
        try:
            put_small_file(temp, data, options, exclusive=True,
                           rename_to=self._target(parts, name))
            return name
        except OSError as exc:
            if exc.errno != errno.EEXIST or not smbclient.path.isfile(temp, **options):
                _remove_quietly(temp, options)
                raise
        # The name is taken: the file is written, numbered names are tried one by one.
        try:
            for number in range(2, MAX_NUMBER + 1):
                candidate = numbered_filename(name, number, self.name_length)
                try:
                    smbclient.rename(temp, self.share.unc(self.path, *parts, candidate),
                                     **options)
                    return candidate
                except OSError as exc:
                    if exc.errno != errno.EEXIST:
                        raise
            raise self._too_many(name)
        except BaseException:
            _remove_quietly(temp, options)
            raise

    def _target(self, parts: list[str], name: str) -> FileRenameInformation:
        rename = FileRenameInformation()
        rename["replace_if_exists"] = False
        # Relative to the share, as SMB names the target of a rename.
        rename["file_name"] = "\\".join([*self.path.folders, *parts, name])
        return rename

    def _too_many(self, name: str) -> StorageError:
        return StorageError(
            f"More than {MAX_NUMBER} different files are named “{name}” in one folder of "
            f"{self.directory}; nothing was saved.", directory=str(self.directory))

    def _rename(self, raw: Any, parts: list[str], name: str) -> str:
        """Give the open, finished file its final name, next to others but never over one."""
        for number in range(1, MAX_NUMBER + 1):
            candidate = name if number == 1 else numbered_filename(name, number,
                                                                   self.name_length)
            try:
                _set_info(raw, self._target(parts, candidate))
                return candidate
            except OSError as exc:
                # smbclient's errors are plain OSErrors with an errno, not its subclasses.
                if exc.errno != errno.EEXIST:
                    raise
        raise self._too_many(name)

    def _entry(self, digest: str) -> str:
        """The index entry of this content: the owner, then the file's path in the folder."""
        return self.share.unc(self.path, INDEX, digest[:2], digest)

    def _claim(self, digest: str, relative: str, options: dict[str, Any]) -> bool:
        """Create the index entry saying this content is stored at `relative`, unless there
        is one: True if created, False if an entry was there already."""
        try:
            self._remember(digest, relative, options, only_new=True)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise
        return True

    def _find(self, digest: str, size: int, options: dict[str, Any]) -> str | None:
        """The stored file with this content, if the index knows one and it is unchanged."""
        try:
            with smbclient.open_file(self._entry(digest), "rb", **options) as file:
                entry = file.read(4096).decode()
            owner, separator, relative = entry.partition("\n")
            if not separator or owner != self.owner:
                return None   # another organization's entry, or none: never followed
            parts = relative.split("/")
            if len(parts) != 4 or any(part in ("", ".", "..") or "\\" in part
                                      for part in parts):
                return None
            stored = self.share.unc(self.path, *parts)
            if smbclient.stat(stored, **options).st_size != size:
                return None
            content = hashlib.sha256()
            with smbclient.open_file(stored, "rb", **options) as file:
                while chunk := file.read(CHUNK):
                    content.update(chunk)
        except UnicodeDecodeError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
                return None
            raise
        return relative if content.hexdigest() == digest else None

    def _remember(self, digest: str, relative: str, options: dict[str, Any], *,
                  only_new: bool = False) -> None:
        """Write the index entry (only where none is, if `only_new`: EEXIST otherwise)."""
        # Written in place, in one SMB write of under a kilobyte, not through a temporary
        # file and a rename (two round trips more per attachment): the index is only a hint,
        # checked against the stored file's content before use, so an entry garbled by a lost
        # connection costs one extra copy, never a wrong file.
        index = self.share.unc(self.path, INDEX, digest[:2])
        self._makedirs(index, options)
        put_small_file(f"{index}\\{digest}", f"{self.owner}\n{relative}".encode(), options,
                       exclusive=only_new)

    def _storage_error(self, exc: BaseException) -> StorageError:
        error = translate(exc, str(self.directory), self.share.server)
        return StorageError(error.message, errno=error.errno, directory=str(self.directory))


def _fill(fill: Callable[[BinaryIO], object], sink: _Sink) -> None:
    """`fill` writes the attachment into the sink."""
    try:
        fill(cast(BinaryIO, sink))
    except Exception as exc:
        if sink.failure:
            raise sink.failure from None
        raise _SourceFailed(exc) from exc
    if sink.failure:
        raise sink.failure
    # Each SMB write is answered once the server has the bytes: no further sync to ask for.


def _set_info(raw: Any, info: Any) -> None:
    """One SET_INFO request on an open handle."""
    with SMBFileTransaction(raw) as transaction:
        set_info(transaction, info)


def _delete_pending() -> FileDispositionInformation:
    disposition = FileDispositionInformation()
    disposition["delete_pending"] = True
    return disposition


class _Sink(MeteredSink):
    """The temporary file on the share, opened only once more than one chunk has come."""

    failures = (Exception,)   # smbclient's errors are not all OSErrors

    def __init__(self, open_file: Callable[[], Any], max_bytes: int | None) -> None:
        super().__init__(max_bytes)
        self.open_file = open_file
        self.raw: Any = None
        self.buffer = bytearray()   # the first chunk, until the file is opened

    def _put(self, view: memoryview) -> None:
        if self.raw is None and len(self.buffer) + len(view) <= CHUNK:
            self.buffer += view
            return
        if self.raw is None:
            self.raw = self.open_file()
            self._send(memoryview(self.buffer))
            self.buffer = bytearray()
        self._send(view)

    def _send(self, view: memoryview) -> None:
        while view:
            view = view[self.raw.write(view):]


class _SourceFailed(Exception):
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _remove_quietly(path: str, options: dict[str, Any]) -> None:
    # Cleanup after a failure (or of a name already renamed away): the failure is reported.
    with suppress(Exception):
        smbclient.remove(path, **options)

