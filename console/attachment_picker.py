"""The attachment directory's "…" picker: browse the organization's approved attachment roots
and create a folder below them, like the desktop tool's "Browse for folder" dialog.

Only the organization's own approved roots are ever listed or written below, whoever asks:
a path is resolved (`..`, symbolic links) and checked against the roots of the profile's
organization before anything is read; symbolic links are never listed; a new folder's name
must be one the share stores as given (`safe_filename` leaves it unchanged), so it cannot
climb out, hide itself or name a Windows device. Both views answer POSTs only (the CSRF
check applies) and find the profile through the organization-scoped admin queryset, so
another organization's profile is a 404 like a missing one.
"""

from __future__ import annotations

import os
import unicodedata
from typing import Any

from django.contrib.admin.utils import quote
from django.core.exceptions import ValidationError
from django.forms import BaseFormSet
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mailimport import smb_browse
from mailimport.filenames import FALLBACK, safe_filename
from mailimport.smb_connection import ShareError
from profiles.models import Organization
from profiles.models.organizations import NO_ATTACHMENT_ROOTS
from profiles.scoping import organization_of
from profiles.secrets import SecretKeyError
from profiles.share_paths import SharePath, parse_share_path

MAX_NAME_BYTES = 150   # as attachment names: leaves room for the path on Windows clients
# Folders are opened without following a symbolic link at the last step (the rest of the path
# was resolved and checked just before).
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PickerError(Exception):
    """Why a folder cannot be listed or created, in words for the administrator."""


def folder_name_problem(name: str) -> str | None:
    """What is wrong with `name` as a new folder's name, or None if it may be created."""
    if not name.strip():
        return _("Give the new folder a name.")
    usable = safe_filename(name, MAX_NAME_BYTES)
    if unicodedata.normalize("NFC", name) == usable:
        return None
    if usable == FALLBACK or not usable.strip("_"):
        return _("“%(name)s” cannot be a folder name on the share.") % {"name": name}
    return _("“%(name)s” cannot be a folder name on the share (no slashes, leading dots, "
             "control characters or device names such as CON); “%(usable)s” could be.") % {
        "name": name, "usable": usable}


def _display(organization: Organization, resolved: str) -> tuple[str, str | None]:
    """The folder as the administrator knows it (below the root as configured) and its
    parent's path, None for a root itself (its parent is the list of roots)."""
    for root in organization.approved_attachment_roots():
        real_root = os.path.realpath(root)
        if os.path.commonpath([resolved, real_root]) == real_root:
            relative = os.path.relpath(resolved, real_root)
            if relative == ".":
                return root, None
            return os.path.join(root, relative), os.path.dirname(os.path.join(root, relative))
    raise PickerError(_("The folder is not inside an approved attachment root."))


def _checked(organization: Organization, folder: str) -> str:
    try:
        resolved = organization.check_attachment_directory(folder)
    except ValidationError as exc:
        raise PickerError(" ".join(exc.messages)) from None
    if not os.path.isdir(resolved):
        raise PickerError(_("The folder %(folder)s does not exist (any more).")
                          % {"folder": folder})
    return resolved


def list_folder(organization: Organization, folder: str) -> dict[str, Any]:
    """The subfolders of `folder` (no folder: the approved roots themselves)."""
    if not folder:
        roots = organization.approved_attachment_roots()
        if not roots:
            raise PickerError(str(NO_ATTACHMENT_ROOTS))
        return {"path": "", "parent": None, "folders": [
            {"name": root, "path": root} for root in roots]}
    if organization.on_share():
        return _list_share_folder(organization, folder)
    resolved = _checked(organization, folder)
    shown, parent = _display(organization, resolved)
    try:
        with os.scandir(resolved) as entries:
            # Dot folders are the store's bookkeeping (.incoming, .sha256), never a choice;
            # a symbolic link could lead anywhere, so it is not offered.
            names = sorted((entry.name for entry in entries
                            if not entry.name.startswith(".")
                            and entry.is_dir(follow_symlinks=False)), key=str.casefold)
    except OSError as exc:
        raise PickerError(_("The folder cannot be read: %(reason)s.")
                          % {"reason": exc.strerror}) from None
    return {"path": shown, "parent": parent if parent is not None else "", "folders": [
        {"name": name, "path": os.path.join(shown, name)} for name in names]}


def create_folder(organization: Organization, parent: str, name: str) -> str:
    """Create `name` in `parent` (inside the approved roots); the new folder's path."""
    problem = folder_name_problem(name)
    if problem:
        raise PickerError(problem)
    name = unicodedata.normalize("NFC", name)
    if organization.on_share():
        return _create_share_folder(organization, parent, name)
    resolved = _checked(organization, parent)
    shown, _parent = _display(organization, resolved)
    try:
        folder = os.open(resolved, _DIRECTORY_FLAGS)
    except OSError as exc:
        raise PickerError(_("The folder cannot be opened: %(reason)s.")
                          % {"reason": exc.strerror}) from None
    try:
        os.mkdir(name, 0o777, dir_fd=folder)
    except FileExistsError:
        raise PickerError(_("%(name)s exists already in %(folder)s.")
                          % {"name": name, "folder": shown}) from None
    except OSError as exc:
        raise PickerError(_("The folder could not be created: %(reason)s.")
                          % {"reason": exc.strerror}) from None
    finally:
        os.close(folder)
    return os.path.join(shown, name)


# --- on a Windows share (mailimport/smb_browse.py) ------------------------------------------
def _share_path(organization: Organization, folder: str) -> SharePath:
    try:
        return parse_share_path(organization.check_attachment_directory(folder))
    except ValidationError as exc:
        raise PickerError(" ".join(exc.messages)) from None


def _list_share_folder(organization: Organization, folder: str) -> dict[str, Any]:
    path = _share_path(organization, folder)
    try:
        names = smb_browse.subfolders(organization, path)
    except (ShareError, SecretKeyError) as exc:
        raise PickerError(str(exc)) from None
    parent = smb_browse.parent_of(organization, path)
    return {"path": str(path), "parent": parent or "", "folders": [
        {"name": name, "path": str(path.joinpath(name))} for name in names]}


def _create_share_folder(organization: Organization, parent: str, name: str) -> str:
    try:
        return str(smb_browse.make_folder(organization, _share_path(organization, parent),
                                          name))
    except (ShareError, SecretKeyError) as exc:
        raise PickerError(str(exc)) from None


# --- the admin ------------------------------------------------------------------------------
class AttachmentPickerAdminMixin:
    """Mixed into the sync profile admin (which has `changeable_object`): the two views."""

    def get_urls(self) -> list[URLPattern]:
        site = self.admin_site  # type: ignore[attr-defined]
        return [
            path("<path:object_id>/attachment-folders/",
                 site.admin_view(require_POST(self.attachment_folders_view)),
                 name="profiles_syncprofile_attachment_folders"),
            path("<path:object_id>/attachment-folders/create/",
                 site.admin_view(require_POST(self.attachment_folder_create_view)),
                 name="profiles_syncprofile_attachment_folder_create"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def attachment_folders_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        profile = self.changeable_object(request, object_id)  # type: ignore[attr-defined]
        try:
            return JsonResponse(list_folder(profile.organization, request.POST.get("path", "")))
        except PickerError as exc:
            return JsonResponse({"error": str(exc)}, status=400)

    def attachment_folder_create_view(self, request: HttpRequest,
                                      object_id: str) -> JsonResponse:
        profile = self.changeable_object(request, object_id)  # type: ignore[attr-defined]
        try:
            created = create_folder(profile.organization, request.POST.get("parent", ""),
                                    request.POST.get("name", ""))
        except PickerError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse({"path": created}, status=201)


class AttachmentDirectoryInline:
    """The mail settings inline: the attachment directory says where it may lie and gets the
    "…" picker (attachment_picker.js)."""

    def get_formset(self, request: HttpRequest, obj: Any = None,
                    **kwargs: Any) -> type[BaseFormSet]:
        formset = super().get_formset(request, obj, **kwargs)  # type: ignore[misc]
        field = formset.form.base_fields.get("attachment_directory")
        if field is None:   # shown read-only (no change permission)
            return formset
        organization = obj.organization if obj is not None and obj.pk else organization_of(
            request.user)
        roots = organization.approved_attachment_roots() if organization else []
        if roots:
            allowed = _("Allowed: inside %(roots)s.") % {"roots": ", ".join(roots)}
        elif organization is not None:
            allowed = str(NO_ATTACHMENT_ROOTS)
        else:
            allowed = _("Inside one of the organization's attachment roots.")
        if obj is not None and obj.pk:
            hint = _("Choose or create it with the “…” button.")
            field.widget.attrs.update({
                "data-attachment-list-url": reverse(
                    "admin:profiles_syncprofile_attachment_folders", args=[quote(obj.pk)]),
                "data-attachment-create-url": reverse(
                    "admin:profiles_syncprofile_attachment_folder_create",
                    args=[quote(obj.pk)]),
            })
        else:
            hint = _("Save the profile first to browse the share.")
        field.widget.attrs.update({"class": "vTextField attachment-picker-path",
                                   "data-attachment-hint": hint})
        # The admin shows help texts as HTML; the roots are paths, not markup.
        field.help_text = escape(f"{allowed} {hint}")
        return formset
