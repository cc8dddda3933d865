"""The attachment directory picker on a Windows share: list a folder's subfolders and create
one, only inside the organization's roots, signed in as its share user.

The path is checked against the roots first (profiles/share_paths.py: no `..`, nothing
outside them); dot folders (the store's bookkeeping) and links (reparse points) are never
offered. Errors come back as ShareError in plain words.
"""

from __future__ import annotations

import errno

import smbclient

from mailimport.smb_connection import ShareConnection, ShareError, translate
from profiles.models import Organization
from profiles.share_paths import SharePath, parse_share_path


def _connection(organization: Organization) -> ShareConnection:
    roots = organization.approved_attachment_roots()
    return ShareConnection(parse_share_path(roots[0]).server, organization.share_username,
                           organization.share_password(), port=organization.share_port,
                           require_encryption=organization.share_requires_encryption, timeout=5)


def parent_of(organization: Organization, path: SharePath) -> str | None:
    """The folder above `path`, None for a root itself (its parent is the list of roots)."""
    if any(parse_share_path(root).key() == path.key()
           for root in organization.approved_attachment_roots()):
        return None
    return str(SharePath(path.server, path.share, path.folders[:-1]))


def subfolders(organization: Organization, path: SharePath) -> list[str]:
    connection = _connection(organization)
    try:
        options = connection.options()
        names = [entry.name for entry in smbclient.scandir(connection.unc(path), **options)
                 if not entry.name.startswith(".") and entry.is_dir()
                 and not entry.is_symlink()]
    except ShareError:
        raise
    except Exception as exc:
        raise translate(exc, str(path), connection.server) from exc
    finally:
        connection.close()
    return sorted(names, key=str.casefold)


def make_folder(organization: Organization, parent: SharePath, name: str) -> SharePath:
    """`name` (already checked as a folder name) created in `parent`."""
    folder = parent.joinpath(name)
    connection = _connection(organization)
    try:
        smbclient.mkdir(connection.unc(folder), **connection.options())
    except ShareError:
        raise
    except Exception as exc:
        # smbclient's errors are plain OSErrors with an errno, not its subclasses.
        if getattr(exc, "errno", None) == errno.EEXIST:
            raise ShareError("exists", f"{name} exists already in {parent}.") from None
        raise translate(exc, str(parent), connection.server) from exc
    finally:
        connection.close()
    return folder
