"""A small file put on an SMB share in one round trip: create, write, optionally rename, close,
sent as one compound request with only the statuses read back.

The attachment store writes two small files an attachment (the file and its index entry), a
few thousand a run. smbclient's file objects parse every response in full (the CREATE's
answer, with its times and contexts, was the largest part of the client's work per file) and
find out that a name is taken by raising and catching an exception; the store needs only
whether each step succeeded, and that the write took every byte.
"""

from __future__ import annotations

import struct
from contextlib import suppress
from typing import Any

import smbclient
from smbclient._pool import get_smb_tree
from smbprotocol.exceptions import SMBOSError, SMBResponseException
from smbprotocol.file_info import FileRenameInformation
from smbprotocol.header import NtStatus
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    FileAttributes,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    SMB2CloseRequest,
    SMB2SetInfoRequest,
    SMB2WriteRequest,
)

# In a related compound the requests after the CREATE name "the file just opened" by this id.
_RELATED_FILE = b"\xff" * 16
# The access the store's files are opened with: written, and renamed or deleted through the
# same handle.
WRITE_AND_DELETE = (FilePipePrinterAccessMask.FILE_WRITE_DATA
                    | FilePipePrinterAccessMask.FILE_WRITE_ATTRIBUTES
                    | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES
                    | FilePipePrinterAccessMask.DELETE)


def put_small_file(path: str, data: bytes, options: dict[str, Any], *, exclusive: bool,
                   rename_to: FileRenameInformation | None = None) -> None:
    """Create `path` (only if no such name exists when `exclusive`, else over it), write
    `data`, give it the name `rename_to` (never over another file) and close it, in one
    request. Raises smbclient's `SMBOSError` (an `OSError` with the errno of the status:
    EEXIST for a name taken) for the first step that failed; a file whose write failed is
    never left under the name it was renamed to."""
    tree, share_path = get_smb_tree(path, **options)
    create = Open(tree, share_path).create(
        ImpersonationLevel.Impersonation, WRITE_AND_DELETE, FileAttributes.FILE_ATTRIBUTE_NORMAL,
        0,   # nobody else opens it while it is being written
        CreateDisposition.FILE_CREATE if exclusive else CreateDisposition.FILE_OVERWRITE_IF,
        CreateOptions.FILE_NON_DIRECTORY_FILE, send=False)[0]
    write = SMB2WriteRequest()
    write["length"] = len(data)
    write["offset"] = 0
    write["file_id"] = _RELATED_FILE
    write["buffer"] = data
    messages: list[Any] = [create, write]
    if rename_to is not None:
        rename = SMB2SetInfoRequest()
        rename["info_type"] = rename_to.INFO_TYPE
        rename["file_info_class"] = rename_to.INFO_CLASS
        rename["file_id"] = _RELATED_FILE
        rename["buffer"] = rename_to
        messages.append(rename)
    close = SMB2CloseRequest()
    close["file_id"] = _RELATED_FILE
    messages.append(close)

    connection = tree.session.connection
    requests = connection.send_compound(messages, tree.session.session_id,
                                        tree.tree_connect_id, related=True)
    # Every answer is collected, also after a failure: smbprotocol keeps each request until
    # its answer is taken.
    answers = [_answer(connection, request) for request in requests]
    statuses = [status for status, _ in answers]
    created, written = statuses[0], statuses[1]
    if created != NtStatus.STATUS_SUCCESS:
        raise SMBOSError(created, path)
    if written == NtStatus.STATUS_SUCCESS and _count_written(answers[1][1]) != len(data):
        written = NtStatus.STATUS_DISK_FULL   # the server took fewer bytes than sent
    if written != NtStatus.STATUS_SUCCESS:
        if rename_to is not None and statuses[2] == NtStatus.STATUS_SUCCESS:
            # A server that carried on after the failed write: the short file has its final
            # name, and must not keep it.
            _remove_quietly(tree, str(rename_to["file_name"].get_value()), options)
        else:
            _remove_quietly(tree, share_path, options)
        raise SMBOSError(written, path)
    if rename_to is not None and statuses[2] != NtStatus.STATUS_SUCCESS:
        raise SMBOSError(statuses[2], path)
    if statuses[-1] != NtStatus.STATUS_SUCCESS:
        raise SMBOSError(statuses[-1], path)


def _answer(connection: Any, request: Any) -> tuple[int, bytes]:
    """The status of one request of a compound and its answer's body."""
    try:
        header = connection.receive(request)
    except SMBResponseException as exc:
        return exc.status, b""
    return header["status"].get_value(), header["data"].get_value()


def _count_written(body: bytes) -> int:
    # SMB2 WRITE Response: StructureSize (2), Reserved (2), Count (4), ... (MS-SMB2 2.2.22).
    return struct.unpack_from("<I", body, 4)[0] if len(body) >= 8 else -1


def _remove_quietly(tree: Any, share_path: str, options: dict[str, Any]) -> None:
    """Delete a file by its path in the share (cleanup after a failure, which is what gets
    reported; the connection may be gone with it)."""
    with suppress(Exception):
        smbclient.remove(f"{tree.share_name}\\{share_path}", **options)
