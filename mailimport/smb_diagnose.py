"""Test an organization's attachment share: sign in, open each root, write and remove a file.

Every failure is said in plain words with its reason (ShareError.reason): the server's name not
resolving, a network the operator does not allow, nothing listening, the user or password
refused, no such share or folder, no write permission, encryption required but not offered.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import smbclient

from mailimport.smb_connection import ShareConnection, ShareError, translate
from profiles.models import Organization
from profiles.secrets import SecretKeyError
from profiles.share_paths import SharePath, parse_share_path


@dataclass(frozen=True)
class ShareReport:
    ok: bool
    reason: str
    message: str


def check_share(organization: Organization, timeout: float = 5) -> ShareReport:
    roots = organization.approved_attachment_roots()
    if not roots:
        return ShareReport(False, "setup", "No attachment roots on a share are set for this "
                           "organization: write them as \\\\server\\share\\folder.")
    try:
        password = organization.share_password()
    except SecretKeyError as exc:
        return ShareReport(False, "secret", str(exc))
    server = parse_share_path(roots[0]).server
    connection = ShareConnection(server, organization.share_username, password,
                                 port=organization.share_port, timeout=timeout,
                                 require_encryption=organization.share_requires_encryption)
    try:
        for root in map(parse_share_path, roots):
            _probe(connection, root)
    except ShareError as exc:
        return ShareReport(False, exc.reason, exc.message)
    finally:
        connection.close()
    encryption = ("encrypted (SMB 3)" if connection.encrypted else
                  "not encrypted: the server does not offer SMB 3 encryption")
    return ShareReport(True, "ok", f"The share works: signed in to {server} as "
                       f"{organization.share_username}, wrote and removed a test file in "
                       f"{', '.join(roots)}; the connection is {encryption}.")


def _probe(connection: ShareConnection, root: SharePath) -> None:
    where = str(root)
    try:
        options = connection.options()
        folder = connection.unc(root)
        # The share itself first: "no such share" is told apart from "no such folder".
        smbclient.listdir(connection.unc(SharePath(root.server, root.share)), **options)
        smbclient.makedirs(folder, exist_ok=True, **options)
        probe = f"{folder}\\.xchgsync-test-{secrets.token_hex(8)}"
        with smbclient.open_file(probe, "xb", **options) as file:
            file.write(b"test")
        smbclient.remove(probe, **options)
    except ShareError:
        raise
    except Exception as exc:
        raise translate(exc, where, connection.server) from exc
