"""Which options of their own profile users may change themselves ("My sync settings").

The desktop tools the product replaces were configured by each user; here an organization's
administrator chooses which of those options are the users' (Organization.self_service).
None by default: an upgraded server behaves as before until an administrator says otherwise.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


class UserOption(models.TextChoices):
    AGENDAS = "agendas", _("Which agendas are synced (events, contacts, e-mail import)")
    DIRECTIONS = "directions", _("Directions of events and contacts")
    CALENDAR_WINDOW = "calendar_window", _("Days of events into the past and future")
    FOLDERS = "folders", _("Folders of events and contacts (chosen from the mailbox)")
    PRIVATE_EVENTS = "private_events", _("Whether private events are synced")
    MAIL_IMPORT = "mail_import", _("Folders and days of the e-mail import")


# The model fields behind each option, per model (by model name: the models import this
# module). The user's page edits these and nothing else.
OPTION_FIELDS: dict[str, dict[UserOption, tuple[str, ...]]] = {
    "syncprofile": {UserOption.AGENDAS: ("sync_calendar", "sync_contacts", "import_mail")},
    "calendarsettings": {
        UserOption.DIRECTIONS: ("direction",),
        UserOption.CALENDAR_WINDOW: ("days_past", "days_future"),
        UserOption.FOLDERS: ("folder_path", "folder_id"),
        UserOption.PRIVATE_EVENTS: ("skip_private",),
    },
    "contactsettings": {
        UserOption.DIRECTIONS: ("direction",),
        UserOption.FOLDERS: ("folder_path", "folder_id"),
    },
    "mailsettings": {UserOption.MAIL_IMPORT: ("received_within_days",)},
}
# The mail folders to import (MailFolder rows) are the users' with this option.
MAIL_FOLDERS_OPTION = UserOption.MAIL_IMPORT


def fields_for(model: type[models.Model], options: frozenset[str]) -> list[str]:
    """The fields of `model` that the given options let a user change, in the model's order."""
    allowed = {name for option, names in OPTION_FIELDS.get(model._meta.model_name, {}).items()
               if option in options for name in names}
    return [f.name for f in model._meta.concrete_fields if f.name in allowed]


class UserOptionsField(models.JSONField):
    """A list of UserOption values, stored as JSON (any database), edited as checkboxes."""

    def validate(self, value: Any, model_instance: models.Model | None) -> None:
        super().validate(value, model_instance)
        if not isinstance(value, list) or not set(value) <= set(UserOption.values):
            raise ValidationError(_("Choose among the options listed."), code="invalid_choice")

    def formfield(self, **kwargs: Any) -> forms.Field:
        defaults: dict[str, Any] = {
            "form_class": forms.MultipleChoiceField,
            "choices": UserOption.choices,
            "widget": forms.CheckboxSelectMultiple,
            # The default is a callable (list): Django would add a hidden "initial" input.
            "show_hidden_initial": False,
        }
        # JSONField.formfield would force its own form class: skip to Field's.
        return models.Field.formfield(self, **{**defaults, **kwargs})
