"""The settings a user may change on their own profile: forms of exactly those fields.

Which fields those are is the organization's choice (profiles.models.self_service). The forms
are model forms of only the allowed fields, so the models' own checks (validators, clean())
are the admin's, and anything else a browser posts is not a field of any form: it is ignored.
Saving goes through the models, so the audit log records each change under the user's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction
from django.forms.models import BaseInlineFormSet, inlineformset_factory, modelform_factory
from django.http import QueryDict
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from console.admin_mailbox import list_folders
from console.folder_change import FolderChangeForm
from engine.folder_move import has_synced
from engine.mailbox.base import MailboxError
from engine.mailbox.diagnose import profile_target
from engine.records import Kind
from profiles.models import CalendarSettings, ContactSettings, MailFolder, MailSettings, SyncProfile
from profiles.models.self_service import MAIL_FOLDERS_OPTION, UserOption, fields_for

# The page's sections: which model, under which heading, and its folder kind (if any).
SECTIONS: tuple[tuple[type[models.Model], Any, Kind | None], ...] = (
    (SyncProfile, gettext_lazy("Agendas"), None),
    (CalendarSettings, gettext_lazy("Events"), Kind.CALENDAR),
    (ContactSettings, gettext_lazy("Contacts"), Kind.CONTACTS),
    (MailSettings, gettext_lazy("E-mail import"), Kind.MAIL),
)
# The folder picker's words (profiles/static/profiles/folder_picker.js asks window.gettext
# for them): the user pages have no JavaScript catalog, so the page hands them over.
PICKER_TEXTS = (
    gettext_noop("Choose a folder from the mailbox"),
    gettext_noop("Reading the mailbox's folders…"),
    gettext_noop("Close"),
    gettext_noop("The mailbox has no folders of this kind."),
    gettext_noop("Choose a folder:"),
    gettext_noop("The folder list could not be read from this server."),
)
# Options whose folders the user's picker may list.
FOLDER_OPTIONS = {Kind.CALENDAR: UserOption.FOLDERS, Kind.CONTACTS: UserOption.FOLDERS,
                  Kind.MAIL: MAIL_FOLDERS_OPTION}


def picker_texts() -> dict[str, str]:
    """English → the active language, for portal/picker_texts.js."""
    return {text: _(text) for text in PICKER_TEXTS}


def may_list_folders(profile: SyncProfile, kind: Kind) -> bool:
    return FOLDER_OPTIONS[kind] in profile.organization.user_options()


def folder_list_url(profile: SyncProfile, kind: Kind) -> str:
    return reverse("portal:own_folders", args=[profile.pk, kind.value])


def mark_folder_fields(form_fields: dict[str, forms.Field], kind: Kind, url: str) -> None:
    """The path and id inputs the "…" picker (profiles/folder_picker.js) fills together:
    read-only to the keyboard, so the path shown is always the chosen folder's."""
    if "folder_path" not in form_fields:
        return
    hint = _("Choose it with the “…” button.")
    form_fields["folder_path"].widget.attrs.update({
        "readonly": True, "class": "folder-picker-path", "data-folder-kind": kind.value,
        "data-folder-list-url": url, "data-folder-hint": hint})
    form_fields["folder_path"].help_text = hint
    form_fields["folder_id"].widget = forms.HiddenInput(attrs={"class": "folder-picker-id"})


class OwnOptionsForm(forms.ModelForm):
    def _update_errors(self, errors: ValidationError) -> None:
        # The model's clean() also checks what only an administrator sets (a profile's
        # connection or password): such a problem is shown above the form, as the user has
        # no field of that name to show it at.
        if hasattr(errors, "error_dict"):
            moved: dict[str, list[ValidationError]] = {}
            for name, messages in errors.error_dict.items():
                key = name if name in self.fields or name == NON_FIELD_ERRORS else NON_FIELD_ERRORS
                moved.setdefault(key, []).extend(messages)
            errors = ValidationError(moved)
        super()._update_errors(errors)


@dataclass
class Section:
    title: str
    form: forms.ModelForm
    kind: Kind | None


@dataclass
class OwnSettings:
    """One profile's settings a user may change: a form per agenda, the mail folders."""

    profile: SyncProfile
    sections: list[Section] = field(default_factory=list)
    folders: BaseInlineFormSet | None = None

    @classmethod
    def of(cls, profile: SyncProfile, data: QueryDict | None = None) -> OwnSettings:
        options = profile.organization.user_options()
        settings = cls(profile)
        prefix = f"p{profile.pk}"
        for model, title, kind in SECTIONS:
            names = fields_for(model, options)
            if not names:
                continue
            instance = profile if model is SyncProfile else getattr(
                profile, model._meta.model_name)
            base: type[forms.ModelForm] = OwnOptionsForm
            if kind is not None and "folder_id" in names and has_synced(profile.pk, kind.value):
                # As in the admin (console.folder_change): a synced folder changes only with
                # "I understand", and the next run moves the synced items into the new one.
                base = type("OwnFolderChangeForm", (FolderChangeForm, OwnOptionsForm), {})
            form_class = modelform_factory(model, form=base, fields=names)
            form = form_class(data, instance=instance,
                              prefix=f"{prefix}-{model._meta.model_name}")
            if kind is not None:
                mark_folder_fields(form.fields, kind, folder_list_url(profile, kind))
            settings.sections.append(Section(str(title), form, kind))
        if MAIL_FOLDERS_OPTION in options:
            formset_class = inlineformset_factory(
                SyncProfile, MailFolder, fields=["folder_path", "folder_id"], extra=1,
                can_delete=True)
            settings.folders = formset_class(data, instance=profile, prefix=f"{prefix}-folders")
            url = folder_list_url(profile, Kind.MAIL)
            for form in settings.folders.forms:
                mark_folder_fields(form.fields, Kind.MAIL, url)
                if "DELETE" in form.fields:
                    form.fields["DELETE"].label = _("Remove")
        return settings

    @property
    def editable(self) -> bool:
        return bool(self.sections or self.folders)

    def is_valid(self) -> bool:
        valid = all([s.form.is_valid() for s in self.sections])
        if self.folders is not None:
            valid = self.folders.is_valid() and valid
        return valid and self._folders_are_the_mailboxes()

    def _folders_are_the_mailboxes(self) -> bool:
        """A folder id changed by the user must be one of their mailbox's folders of its
        kind; the path stored with it is the mailbox's, not the one posted. The picker only
        offers those, but a posted id is anyone's to make up. Read live, before any write."""
        wanted: list[tuple[forms.ModelForm, Kind]] = [
            (s.form, s.kind) for s in self.sections
            if s.kind is not None and "folder_id" in s.form.changed_data]
        if self.folders is not None:
            wanted += [(f, Kind.MAIL) for f in self.folders.forms
                       if f.has_changed() and f.cleaned_data.get("folder_id")
                       and not f.cleaned_data.get("DELETE")]
        if not wanted:
            return True
        target = profile_target(self.profile)
        listed: dict[Kind, dict[str, str]] = {}
        valid = True
        for form, kind in wanted:
            if kind not in listed:
                try:
                    listed[kind] = {f.id: f.path for f in list_folders(target, kind)}
                except MailboxError as exc:
                    form.add_error("folder_path", _(
                        "Your mailbox's folders could not be read to check the choice: "
                        "%(reason)s") % {"reason": exc.message})
                    valid = False
                    continue
            path = listed[kind].get(form.cleaned_data["folder_id"])
            if path is None:
                form.add_error("folder_path", _("This is not a folder of your mailbox: choose "
                                                "one with the “…” button."))
                valid = False
            else:
                form.instance.folder_path = form.cleaned_data["folder_path"] = path
        return valid

    def save(self) -> None:
        # All or nothing: a half-saved page would leave settings nobody chose.
        with transaction.atomic():
            for section in self.sections:
                if section.form.has_changed():
                    section.form.save()
            if self.folders is not None:
                self.folders.save()
