"""Paths on a Windows (SMB) share: `\\\\server\\share\\folder\\…`, checked without the share.

A local directory is checked by resolving it (`..`, symbolic links) against the roots. A path on
a share cannot be resolved from here, so it is held to a stricter form instead: no `.` or `..`
anywhere, no empty part, none of the characters Windows refuses in a name. A path of that form
is inside a root exactly when its parts begin with the root's parts (compared without case, as
Windows does), so no spelling leads outside the chosen folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

# What Windows refuses in a file or folder name (and the control characters).
_FORBIDDEN = re.compile(r'[<>:"/|?*\x00-\x1f]')
_SERVER = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$")


@dataclass(frozen=True)
class SharePath:
    server: str
    share: str
    folders: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "\\".join([f"\\\\{self.server}", self.share, *self.folders])

    def key(self) -> tuple[str, ...]:
        """What decides sameness on a Windows server: the parts without case."""
        return tuple(part.casefold() for part in (self.server, self.share, *self.folders))

    def contains(self, other: SharePath) -> bool:
        return other.key()[:len(self.key())] == self.key()

    def joinpath(self, *names: str) -> SharePath:
        return SharePath(self.server, self.share, (*self.folders, *names))

    def below(self, root: SharePath) -> tuple[str, ...]:
        """The folders from `root` down to here (this path lies inside it)."""
        return self.folders[len(root.folders):]


def is_share_path(text: str) -> bool:
    return text.strip().startswith(("\\\\", "//"))


def parse_share_path(text: str) -> SharePath:
    """`\\\\server\\share\\folder` (or with forward slashes) as parts; ValidationError in plain
    words for anything else."""
    value = text.strip()
    if not is_share_path(value):
        raise ValidationError(
            _("%(path)s is not a path on a Windows share: write it as "
              "\\\\server\\share\\folder.") % {"path": value}, code="not_share_path")
    parts = value.replace("/", "\\")[2:].split("\\")
    if parts and parts[-1] == "":
        parts.pop()   # a trailing backslash
    if len(parts) < 2 or not _SERVER.match(parts[0]):
        raise ValidationError(
            _("%(path)s does not name a server and a share: write it as "
              "\\\\server\\share\\folder.") % {"path": value}, code="not_share_path")
    for part in parts[1:]:
        if part in ("", ".", "..") or _FORBIDDEN.search(part) or part != part.rstrip(" ."):
            raise ValidationError(
                _("%(path)s has a part that is not a plain folder name (%(part)s): “..”, "
                  "“.”, empty parts and the characters < > : \" | ? * are not allowed.")
                % {"path": value, "part": part or "\\\\"}, code="bad_share_part")
    return SharePath(parts[0], parts[1], tuple(parts[2:]))


def check_inside_share_roots(directory: str, roots: list[str]) -> SharePath:
    """The directory, parsed, if it lies inside one of `roots` (themselves share paths)."""
    path = parse_share_path(directory)
    for root in roots:
        try:
            if parse_share_path(root).contains(path):
                return path
        except ValidationError:
            continue
    raise ValidationError(
        _("%(path)s is not inside the attachment folders approved for this organization: "
          "%(roots)s.") % {"path": directory.strip(), "roots": ", ".join(roots)},
        code="outside_roots")
