"""Changing a synced agenda's folder in the admin: confirmed first, and said what happens.

The engine moves the synced items into the newly chosen folder at the next run
(`engine.folder_move`), so nothing is created there a second time. Because that changes the
user's mailbox, the admin asks for a tick in "I understand…" before it saves a new folder for
an agenda that has synced. A connection whose backend cannot move items (Microsoft Graph has
no move for contacts or events) keeps the folder it synced, as the desktop tool of the manual
locks it after the first sync.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.forms import BaseFormSet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from engine.folder_move import can_move, has_synced
from engine.records import Kind

CONFIRM_FIELD = "confirm_folder_change"


class FolderChangeForm(forms.ModelForm):
    """An agenda's settings form with the confirmation a change of its synced folder needs."""

    confirm_folder_change = forms.BooleanField(
        label=gettext_lazy("I understand: the synced items move to the new folder"),
        required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[CONFIRM_FIELD].help_text = _(
            "This agenda has synced with “%(folder)s”. If you choose another folder, the next "
            "run moves the items linked to CRM records from “%(folder)s” into it in the "
            "user's mailbox; they stay linked and nothing is created twice. Items that are not "
            "synced stay where they are. Items already in the new folder are matched to CRM "
            "records by their e-mail address, as on a first sync.") % {
            "folder": self.instance.folder_path}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        new_id = cleaned.get("folder_id")
        if not self.instance.pk or new_id is None or new_id == self.instance.folder_id:
            return cleaned
        values = {"old": self.instance.folder_path, "new": cleaned.get("folder_path") or new_id}
        if not can_move(self.instance.profile.connection.kind):
            self.add_error("folder_path", _(
                "This agenda has synced with “%(old)s”, and this connection (Microsoft Graph) "
                "cannot move contacts or events between folders, so its folder stays as it is "
                "after the first sync (the desktop tool locks it too).") % values)
        elif not cleaned.get(CONFIRM_FIELD):
            self.add_error(CONFIRM_FIELD, _(
                "The folder changes from “%(old)s” to “%(new)s”: tick “I understand” to move "
                "the synced items there at the next run, or choose “%(old)s” again.") % values)
        return cleaned


class FolderChangeInline:
    """An agenda inline whose folder, once synced, changes only with the confirmation."""

    folder_kind: Kind

    def _synced(self, obj: Any) -> bool:
        return obj is not None and obj.pk is not None and has_synced(obj.pk,
                                                                      self.folder_kind.value)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        fieldsets = list(super().get_fieldsets(request, obj))  # type: ignore[misc]
        if self._synced(obj) and fieldsets:
            title, options = fieldsets[0]
            fieldsets[0] = (title, {**options, "fields": (*options["fields"], CONFIRM_FIELD)})
        return fieldsets

    def get_formset(self, request: HttpRequest, obj: Any = None,
                    **kwargs: Any) -> type[BaseFormSet]:
        if self._synced(obj):
            form = kwargs.get("form") or self.form  # type: ignore[attr-defined]
            kwargs["form"] = type(form.__name__, (FolderChangeForm, form), {})
        return super().get_formset(request, obj, **kwargs)  # type: ignore[misc]
