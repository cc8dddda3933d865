"""The category picker of the sync profile admin: Exchange categories are chosen from the
mailbox's own master category list, with their colours, as the desktop tool's category dialog
offers them, and typed where the list is out of reach or lacks one (a category Exchange does
not list yet is still a category an item may carry).

Like the folder picker (admin_mailbox.py), the list is read live, only when the administrator
asks for it, by a POST carrying the change form's CSRF token, through the profile's own
connection and the organization-scoped queryset.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from django import forms
from django.contrib.admin.utils import quote
from django.forms import BaseFormSet
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from console.admin_mailbox import picker_mailbox
from engine.mailbox.base import Category, MailboxError
from engine.mailbox.diagnose import Target, profile_target

# Outlook's 25 colour presets as its category dialog draws them, and their names (read out
# where a colour cannot be seen).
PRESETS: dict[str, tuple[str, Any]] = {
    "preset0": ("#e7484b", gettext_lazy("Red")),
    "preset1": ("#f09c47", gettext_lazy("Orange")),
    "preset2": ("#ab7b57", gettext_lazy("Brown")),
    "preset3": ("#f5d547", gettext_lazy("Yellow")),
    "preset4": ("#4fb348", gettext_lazy("Green")),
    "preset5": ("#45b2a8", gettext_lazy("Teal")),
    "preset6": ("#9aa53f", gettext_lazy("Olive")),
    "preset7": ("#3d8be0", gettext_lazy("Blue")),
    "preset8": ("#8a63d2", gettext_lazy("Purple")),
    "preset9": ("#c74375", gettext_lazy("Cranberry")),
    "preset10": ("#96a8b5", gettext_lazy("Steel")),
    "preset11": ("#4a6073", gettext_lazy("Dark steel")),
    "preset12": ("#a3a3a3", gettext_lazy("Gray")),
    "preset13": ("#5c5c5c", gettext_lazy("Dark gray")),
    "preset14": ("#2b2b2b", gettext_lazy("Black")),
    "preset15": ("#a3232a", gettext_lazy("Dark red")),
    "preset16": ("#c45a16", gettext_lazy("Dark orange")),
    "preset17": ("#7a4b2a", gettext_lazy("Dark brown")),
    "preset18": ("#b59b00", gettext_lazy("Dark yellow")),
    "preset19": ("#2f7a2a", gettext_lazy("Dark green")),
    "preset20": ("#1f6f68", gettext_lazy("Dark teal")),
    "preset21": ("#5f6a20", gettext_lazy("Dark olive")),
    "preset22": ("#1f4e9c", gettext_lazy("Dark blue")),
    "preset23": ("#5a3a9a", gettext_lazy("Dark purple")),
    "preset24": ("#8a1f4b", gettext_lazy("Dark cranberry")),
}
NO_COLOR = gettext_lazy("No colour")
# The picker's own words (category_picker.js), handed to it with each field so that they come
# from the same catalogue, in the same language, as the page around them.
TEXTS = {
    "choose": gettext_lazy("Choose from the mailbox's categories"),
    "reading": gettext_lazy("Reading the mailbox's categories…"),
    "choose_several": gettext_lazy("Choose categories:"),
    "choose_one": gettext_lazy("Choose a category:"),
    "none_listed": gettext_lazy("The mailbox lists no categories: type one below."),
    "unlisted": gettext_lazy("not in the mailbox's list"),
    "another": gettext_lazy("Another category"),
    "add": gettext_lazy("Add"),
    "use": gettext_lazy("Use"),
    "close": gettext_lazy("Close"),
    "no_colour": NO_COLOR,
    "unreadable": gettext_lazy("The category list could not be read from this server."),
    "type_instead": gettext_lazy("Type the category's name instead."),
    "missing": gettext_lazy("The mailbox's category list is missing:"),
}


def category_list_url(profile: Any) -> str:
    return reverse("admin:profiles_syncprofile_categories", args=[quote(profile.pk)])


def list_categories(target: Target) -> list[Category]:
    """The mailbox's master category list, read live; a MailboxError says in words why not."""
    with picker_mailbox(target) as mailbox:
        return mailbox.categories()


def category_json(category: Category) -> dict[str, str]:
    hex_color, color_name = PRESETS.get(category.color, ("", NO_COLOR))
    return {"name": category.name, "color": category.color, "hex": hex_color,
            "color_name": str(color_name)}


def categories_response(profile: Any) -> JsonResponse:
    try:
        categories = list_categories(profile_target(profile))
    except MailboxError as exc:
        return JsonResponse({"error": exc.message}, status=502)
    return JsonResponse({"categories": [category_json(c) for c in categories]})


class CategoryPickerAdminMixin:
    """Mixed into the sync profile's ModelAdmin, beside MailboxToolsMixin (whose
    `changeable_object` finds the profile): the URL the picker POSTs to, and the picker's
    script and style."""

    def get_urls(self) -> list[URLPattern]:
        # Listing reaches out to the mailbox: POST only, so the CSRF check applies.
        view = self.admin_site.admin_view(  # type: ignore[attr-defined]
            require_POST(self.categories_view))
        return [
            path("<path:object_id>/categories/", view,
                 name="profiles_syncprofile_categories"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def categories_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The profile's mailbox's master category list, for the category picker (JSON)."""
        return categories_response(
            self.changeable_object(request, object_id))  # type: ignore[attr-defined]

    @property
    def media(self) -> forms.Media:
        return super().media + forms.Media(  # type: ignore[misc]
            js=["profiles/category_picker.js"], css={"all": ["profiles/category_picker.css"]})


class CategoryPickerInline:
    """An inline whose Exchange category fields get the picker: `category_fields` maps each
    field to whether it holds several categories (one per line) or one."""

    category_fields: dict[str, bool]

    def get_formset(self, request: HttpRequest, obj: Any = None,
                    **kwargs: Any) -> type[BaseFormSet]:
        formset = super().get_formset(request, obj, **kwargs)  # type: ignore[misc]
        fields = formset.form.base_fields
        url = category_list_url(obj) if obj is not None and obj.pk else ""
        texts = json.dumps({key: str(text) for key, text in TEXTS.items()}, ensure_ascii=False)
        for name, multiple in self.category_fields.items():
            if name not in fields:   # shown read-only (no change permission)
                continue
            hint = (_("Choose them from the mailbox's categories with “…”, or type them.")
                    if multiple else
                    _("Choose it from the mailbox's categories with “…”, or type it."))
            if not url:
                hint = _("Type the names; once the profile is saved, “…” lists the mailbox's "
                         "categories.")
            # A copy: a field declared on the form class is shared by every form made from it.
            field = fields[name] = copy.deepcopy(fields[name])
            field.widget.attrs.update({
                "data-category-list-url": url, "data-category-hint": hint,
                "data-category-texts": texts,
                "data-category-multiple": "true" if multiple else "false",
                "class": " ".join(filter(None, [field.widget.attrs.get("class", ""),
                                                "category-picker-field"])),
            })
            if multiple:
                field.help_text = f"{field.help_text} {hint}".strip()
            else:
                field.widget.attrs["title"] = hint
        return formset
