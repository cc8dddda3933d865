"""One organization's connection to its Windows (SMB) share, and SMB errors in plain words.

smbprotocol's `smbclient` keeps connections in a module-wide cache, keyed by server and port,
and hands a later caller the session another one signed in with. Here every `ShareConnection`
has a cache of its own, so one organization's credentials are never used for another's paths.

The share's server is an outbound connection like an EWS URL (security/outbound.py): its name
is resolved here and only an address the operator's policy allows is connected to — by
address, so that nothing resolves the name again later. NTLM signs in (no Kerberos); SMB 3
encryption is used whenever the server offers it, and required if the organization says so.

DFS is not followed to other servers: smbclient follows a referral by itself (a namespace
share's links, a share the server says has moved), connecting to whatever address it names,
past the operator's policy. Each connection's cache holds only the address checked here and
refuses smbclient any other before it connects; a DFS namespace share is refused up front, with
the folder's real share (the link's target) as the root to give.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import uuid
from typing import Any

from smbclient._pool import get_smb_tree
from smbprotocol.connection import Connection
from smbprotocol.exceptions import SMBAuthenticationError, SMBException, SMBResponseException
from smbprotocol.header import NtStatus
from smbprotocol.session import Session

from profiles.share_paths import SharePath
from security import outbound

TIMEOUT = 10  # seconds to connect; a file server on the company network answers in far less


class ShareError(Exception):
    """The share could not be reached or used: `reason` for tests and the diagnosis, the
    message for people."""

    def __init__(self, reason: str, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.errno = errno


# NTSTATUS codes a share answers with, as (reason, message about `{where}`, errno).
_STATUSES: dict[int, tuple[str, str, int | None]] = {
    NtStatus.STATUS_DISK_FULL: ("full", "The share is full: there is no space left to save "
                                "attachments in {where}.", errno.ENOSPC),
    0xC0000044: ("full", "The disk quota on the share is used up: attachments cannot be saved "
                 "in {where}.", errno.EDQUOT),   # STATUS_QUOTA_EXCEEDED
    NtStatus.STATUS_ACCESS_DENIED: ("no_write", "No permission to write to {where}: give the "
                                    "share's user write access to it.", errno.EACCES),
    0xC00000A2: ("read_only", "The share is read-only: attachments cannot be saved in "
                 "{where}.", errno.EROFS),   # STATUS_MEDIA_WRITE_PROTECTED
    # Samba answers a share's name it does not know with STATUS_NOT_FOUND (via DFS lookup).
    NtStatus.STATUS_NOT_FOUND: ("no_share", "The server has no share named as in {where}: "
                                "check the share's name.", errno.ENOENT),
    NtStatus.STATUS_BAD_NETWORK_NAME: ("no_share", "The server has no share named as in "
                                       "{where}: check the share's name.", errno.ENOENT),
    NtStatus.STATUS_LOGON_FAILURE: ("credentials", "The server refused the share's user name "
                                    "or password.", errno.EACCES),
    0xC0000072: ("credentials", "The share's user account is disabled on the server.",
                 errno.EACCES),   # STATUS_ACCOUNT_DISABLED
    NtStatus.STATUS_PASSWORD_EXPIRED: ("credentials", "The password of the share's user has "
                                       "expired: set a new one on the server and here.",
                                       errno.EACCES),
    NtStatus.STATUS_OBJECT_PATH_NOT_FOUND: ("no_folder", "A folder of {where} does not exist "
                                            "on the share.", errno.ENOENT),
    NtStatus.STATUS_OBJECT_NAME_NOT_FOUND: ("no_folder", "A folder of {where} does not exist "
                                            "on the share.", errno.ENOENT),
    NtStatus.STATUS_OBJECT_NAME_INVALID: ("bad_name", "The share refuses a name in {where}.",
                                          errno.EINVAL),
    NtStatus.STATUS_NETWORK_NAME_DELETED: ("lost", "The connection to the share was lost "
                                           "while saving in {where}; nothing was kept.", None),
}


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "ntstatus", None)
    if status is None and isinstance(exc, SMBResponseException):
        status = exc.status
    return status


def translate(exc: BaseException, where: str, host: str) -> ShareError:
    """An error from talking to the share, as a ShareError in plain words."""
    if isinstance(exc, ShareError):
        return exc
    status = status_of(exc)
    if status is not None and status in _STATUSES:
        reason, message, number = _STATUSES[status]
        return ShareError(reason, message.format(where=where), number)
    if status is not None:
        return ShareError("refused_operation", f"The share refused to save in {where} ({exc}); "
                          "nothing was kept.", getattr(exc, "errno", None))
    if isinstance(exc, SMBAuthenticationError):
        return ShareError("credentials", "The server refused the share's user name or password.",
                          errno.EACCES)
    if isinstance(exc, outbound.AddressRefused):
        return ShareError("network_refused", exc.message)
    if isinstance(exc, socket.gaierror):
        return ShareError("dns", f"The server name {host} cannot be resolved (DNS failure): "
                          "check the share's path, or this server's DNS settings.")
    if isinstance(exc, ConnectionRefusedError):
        return ShareError("refused", f"{host} refused the connection: no SMB server listens "
                          "there (a wrong server or port, or file sharing is off).")
    if isinstance(exc, TimeoutError | socket.timeout):
        return ShareError("timeout", f"{host} did not answer in time: check the network and "
                          "firewalls between this server and the file server.")
    if isinstance(exc, SMBException | OSError | EOFError):
        # A connection closed or reset mid-request (the file server went away).
        return ShareError("lost", f"The connection to the share on {host} was lost while "
                          f"saving in {where} ({exc}); nothing was kept.")
    # Anything else the client raises: still an error of this share, said as it is.
    return ShareError("error", f"Could not use the share in {where}: {exc}")


class _OnlyCheckedServer(dict[str, Connection]):
    """smbclient's connection cache of one ShareConnection: the connection to the address
    checked against the operator's policy, and nothing else. smbclient asks it for a server's
    connection before making one; asked for another server (a DFS referral's), it refuses."""

    def __init__(self, server: str) -> None:
        super().__init__()
        self.server = server

    def own(self, key: str) -> Connection | None:
        return super().get(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self:
            target = key.rpartition(":")[0]
            raise ShareError(
                "dfs", f"The share on {self.server} sent this server on to {target} (DFS), which "
                "it does not follow. Give the folder's real location (the DFS link's target "
                "share) as the attachment root.", errno.EREMOTE)
        return super().get(key, default)


class ShareConnection:
    """Signed in to one server as one user, for as long as a run (or a test) needs it."""

    def __init__(self, server: str, username: str, password: str, *, port: int = 445,
                 require_encryption: bool = False, timeout: float = TIMEOUT) -> None:
        self.server = server
        self.port = port
        self.username = username
        self.password = password
        self.require_encryption = require_encryption
        self.timeout = timeout
        self.address = ""
        self.encrypted = False
        self.cache = _OnlyCheckedServer(server)
        self._shares_checked: set[str] = set()
        self._lock = threading.Lock()
        self._share_lock = threading.Lock()

    def options(self) -> dict[str, Any]:
        """The keyword arguments every smbclient call takes: this connection, nobody else's."""
        self.connect()
        return {"port": self.port, "connection_cache": self.cache, "username": self.username}

    def unc(self, path: SharePath, *names: str) -> str:
        """The path as smbclient is to open it: on the address connected to, not the name,
        and on a share checked not to be a DFS namespace."""
        self.connect()
        server = f"[{self.address}]" if ":" in self.address else self.address
        self._refuse_dfs(server, path.share)
        return "\\".join([f"\\\\{server}", path.share, *path.folders, *names])

    def _refuse_dfs(self, server: str, share: str) -> None:
        """Connect to the share once (every later request on it uses the same tree) and refuse
        it if it is a DFS namespace."""
        key = share.lower()
        if key in self._shares_checked:
            return
        with self._share_lock:   # saving threads start together: one connects, once
            if key in self._shares_checked:
                return
            tree, _ = get_smb_tree(f"\\\\{server}\\{share}", **self.options())
        if tree.is_dfs_share:
            raise ShareError(
                "dfs", f"\\\\{self.server}\\{share} is a DFS namespace, whose folders can lead "
                "to other servers: this server does not follow them. Give the folder's real "
                "location (the DFS link's target share) as the attachment root.", errno.EREMOTE)
        self._shares_checked.add(key)

    def connect(self) -> None:
        with self._lock:
            connection = self.cache.own(self._key())
            if connection is not None and connection.transport.connected:
                return
            self._sign_in()

    def _key(self) -> str:
        return f"{self.address.lower()}:{self.port}"

    def _sign_in(self) -> None:
        try:
            addresses = outbound.allowed_addresses(self.server, self.port)
        except (socket.gaierror, UnicodeError, outbound.AddressRefused) as exc:
            raise translate(exc if not isinstance(exc, UnicodeError)
                            else socket.gaierror(str(exc)), self.server, self.server) from exc
        last: BaseException | None = None
        for address in addresses:
            connection = Connection(uuid.uuid4(), address, self.port, require_signing=True)
            try:
                connection.connect(timeout=self.timeout)
            except (OSError, ValueError, SMBException) as exc:
                last = exc.__context__ if isinstance(exc, ValueError) and exc.__context__ else exc
                continue
            break
        else:
            assert last is not None
            raise translate(last, self.server, self.server) from last
        if self.require_encryption and not connection.supports_encryption:
            connection.disconnect()
            raise ShareError("no_encryption", f"{self.server} does not offer SMB 3 encryption, "
                             "which this organization requires: turn it on on the file server "
                             "(SMB 3 or later), or untick “require encryption”.")
        session = Session(connection, self.username, self.password,
                          require_encryption=connection.supports_encryption,
                          auth_protocol="ntlm")
        try:
            session.connect()
        except Exception as exc:
            connection.disconnect()
            raise translate(exc, self.server, self.server) from exc
        self.address = address
        self.encrypted = bool(session.encrypt_data)
        self.cache[self._key()] = connection

    def close(self) -> None:
        with self._lock:
            for connection in self.cache.values():
                # A connection already gone closes quietly.
                with contextlib.suppress(Exception):
                    connection.disconnect(True)
            self.cache.clear()
            self._shares_checked.clear()
