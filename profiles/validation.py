"""Validation rules for the configuration, with messages a person understands."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

_EXTENSION = re.compile(r"^[a-z0-9]+$")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.I)

MAX_DAYS = 3650


def normalize_extensions(text: str) -> str:
    """`"PDF; .docx;pdf"` → `"pdf;docx"`: lowercase, order kept, duplicates dropped.

    Anything but letters and digits is rejected with the offending part named, because an
    extension like `p*f` or `../x` is a mistake, not a pattern.
    """
    seen: list[str] = []
    bad: list[str] = []
    for part in text.split(";"):
        candidate = part.strip().lower().removeprefix(".")
        if not candidate:
            continue
        if not _EXTENSION.match(candidate):
            bad.append(part.strip())
        elif candidate not in seen:
            seen.append(candidate)
    if bad:
        raise ValidationError(
            _("Not a file extension: %(parts)s. Use letters and digits separated by “;”.")
            % {"parts": ", ".join(f"“{b}”" for b in bad)},
            code="bad_extension",
        )
    if not seen:
        raise ValidationError(_("List at least one file extension."), code="no_extension")
    return ";".join(seen)


def check_inside_roots(directory: str, roots: Iterable[str]) -> str:
    """Return the directory resolved (after `..` and symlinks) if it lies inside a root."""
    roots = [r for r in roots if r]
    if not roots:
        raise ValidationError(
            _(
                "No attachment roots are approved on this server: the administrator sets "
                "ATTACHMENT_ROOTS before attachments can be saved."
            ),
            code="no_roots",
        )
    if not directory or not os.path.isabs(directory):
        raise ValidationError(
            _("Give a full path, e.g. %(example)s.") % {"example": os.path.join(roots[0], "crm")},
            code="not_absolute",
        )
    if "\x00" in directory:
        raise ValidationError(_("The path contains a NUL character."), code="nul")
    resolved = os.path.realpath(directory)
    for root in roots:
        real_root = os.path.realpath(root)
        if os.path.commonpath([resolved, real_root]) == real_root:
            return resolved
    raise ValidationError(
        _("%(directory)s is not inside an approved attachment root (%(roots)s).")
        % {"directory": directory, "roots": ", ".join(roots)},
        code="outside_roots",
    )


def paths_overlap(first: str, second: str) -> bool:
    """Whether one folder lies inside the other (or is it), after `..` and symlinks."""
    first, second = os.path.realpath(first), os.path.realpath(second)
    common = os.path.commonpath([first, second])
    return common in (first, second)


def path_lines(text: str) -> list[str]:
    """One path per line, blank lines and exact duplicates dropped (paths are case-sensitive)."""
    paths: list[str] = []
    for line in text.splitlines():
        path = line.strip()
        if path and path not in paths:
            paths.append(path)
    return paths


def check_guid(value: str, label: str) -> None:
    if not _GUID.match(value.strip()):
        raise ValidationError(
            _("%(label)s must be a GUID like 00000000-0000-0000-0000-000000000000.")
            % {"label": label},
            code="not_guid",
        )


def check_tenant(value: str) -> None:
    value = value.strip()
    if not (_GUID.match(value) or _DOMAIN.match(value)):
        raise ValidationError(
            _("The tenant is a GUID or a domain such as contoso.onmicrosoft.com."),
            code="bad_tenant",
        )


def split_lines(text: str) -> list[str]:
    """One value per line, blank lines dropped, duplicates (case-insensitive) dropped."""
    values: list[str] = []
    for line in text.splitlines():
        value = line.strip()
        if value and value.casefold() not in {v.casefold() for v in values}:
            values.append(value)
    return values
