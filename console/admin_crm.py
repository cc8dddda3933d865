"""The admin of CRM connections, and of the profile options a CRM may not be able to honour.

A connection's form holds the fields of every registered kind, each kind's in a fieldset of
its own that crm_kind.js shows for that kind only; only the chosen kind's values are kept.
Secret fields are write-only, as a mailbox connection's are: left blank, the stored one stays.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from console.admin_mailbox import MailboxToolsMixin
from console.forms import SecretInput
from engine.crmstore import registry
from engine.crmstore.base import Capability, CrmBackend, CrmDiagnosis
from engine.crmstore.unheld import RULE_PART
from engine.reasons import FIELD_LABELS
from engine.records import ContactRecord, EventRecord, Kind
from profiles.admin_scoping import OrganizationScopedAdmin
from profiles.models import CrmConnection
from profiles.models.crm_connections import setting_key
from profiles.scoping import organization_of, sees_everything
from profiles.secrets import SecretKeyError

MODEL_FIELDS = ("organization", "kind")
RAYNET = "raynet"   # the kind whose changes come by webhook (engine/crmstore/raynet_webhooks.py)


class CrmConnectionForm(forms.ModelForm):
    kind = forms.ChoiceField(label=gettext_lazy("kind of CRM"))

    class Meta:
        model = CrmConnection
        fields = MODEL_FIELDS

    class Media:
        js = ["profiles/crm_kind.js"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = registry.kind_choices()
        stored = self.instance.stored_secret_names() if self.instance.pk else set()
        for kind in registry.kinds():
            for field in registry.backend_class(kind).settings_fields:
                ours = kind == self.instance.kind
                key = setting_key(kind, field.name)
                if field.secret:
                    self.fields[key] = forms.CharField(
                        label=field.label, required=False, strip=False, widget=SecretInput(),
                        help_text=_("A secret is stored (encrypted). Leave blank to keep it.")
                        if ours and field.name in stored
                        else _("Stored encrypted; it is never shown again."))
                else:
                    self.fields[key] = forms.CharField(
                        label=field.label, required=False, max_length=500,
                        help_text=field.help_text,
                        initial=self.instance.setting(field.name) if ours else "")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if not kind:
            return cleaned
        connection = self.instance
        connection.kind = kind
        fields = registry.backend_class(kind).settings_fields
        connection.settings = {
            field.name: cleaned[setting_key(kind, field.name)] for field in fields
            if not field.secret and cleaned.get(setting_key(kind, field.name))}
        entered = {field.name: cleaned[setting_key(kind, field.name)] for field in fields
                   if field.secret and cleaned.get(setting_key(kind, field.name))}
        if entered:
            try:
                connection.update_secrets(entered)
            except SecretKeyError as exc:
                raise ValidationError(str(exc)) from exc
        return cleaned


@admin.register(CrmConnection)
class CrmConnectionAdmin(MailboxToolsMixin, OrganizationScopedAdmin):
    form = CrmConnectionForm
    actions = ["test_connection", "register_webhook"]
    readonly_fields = ["webhook_state", "only_in_exchange"]
    list_display = ["__str__", "organization", "kind_label", "updated"]
    list_select_related = ["organization"]
    search_fields = ["organization__name"]

    @admin.display(description=gettext_lazy("kind of CRM"), ordering="kind")
    def kind_label(self, connection: CrmConnection) -> str:
        try:
            return str(connection.backend_class.label or connection.kind)
        except ImproperlyConfigured:
            return connection.kind

    @admin.display(description=gettext_lazy("webhook"))
    def webhook_state(self, connection: CrmConnection) -> str:
        from engine.crmstore.raynet_webhooks import state

        return state(connection) if connection.pk and connection.kind == RAYNET else "-"

    @admin.display(description=gettext_lazy("kept only in Exchange"))
    def only_in_exchange(self, connection: CrmConnection) -> str:
        try:
            return unheld_text(connection.backend_class) or "-"
        except ImproperlyConfigured:
            return "-"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # One connection per organization: an organization administrator adds theirs only
        # where it has none (every organization is given one when it is created).
        if not super().has_add_permission(request, obj):
            return False
        if sees_everything(request.user):
            return True
        return not CrmConnection.objects.filter(
            organization=organization_of(request.user)).exists()

    def get_fieldsets(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        main = [f for f in MODEL_FIELDS
                if f != "organization" or sees_everything(request.user)]
        if obj is not None and obj.kind == RAYNET:
            main.append("webhook_state")
        if obj is not None and _holds_less(obj):
            main.append("only_in_exchange")
        fieldsets: list[tuple[Any, dict[str, Any]]] = [(None, {"fields": main})]
        for kind in registry.kinds():
            backend = registry.backend_class(kind)
            if backend.settings_fields:
                fieldsets.append((backend.label or kind, {
                    "classes": ("crm-kind-fields", f"crm-kind-{kind}"),
                    "fields": [setting_key(kind, f.name) for f in backend.settings_fields]}))
        return fieldsets

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any):  # type: ignore[no-untyped-def]
        # The kinds' settings are form fields of their own, not model fields.
        kwargs["fields"] = MODEL_FIELDS
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request: HttpRequest, connection: CrmConnection, form: Any,
                   change: bool) -> None:
        before = registry.reached_by(connection.organization_id) if change else None
        super().save_model(request, connection, form, change)
        if before is not None and registry.reached_by(connection.organization_id) != before:
            # What engine/crm_switch.py does before each agenda's next run, said now.
            self.message_user(request, _(
                "The connection now reaches another CRM: at their next sync, the "
                "organization's profiles forget their links with the previous one and match "
                "both sides anew (nothing is deleted on either side)."), messages.WARNING)

    def _test_and_report(self, request: HttpRequest, objects: list[Any]) -> None:
        # The mailbox tools' button and action, with the CRM kind's own diagnosis; a Raynet
        # connection that answers has its webhook registered (again) at the same time.
        for connection in objects:
            report = diagnosis_of(connection)
            self.message_user(
                request, _("“%(object)s”: %(message)s") % {"object": connection,
                                                          "message": report.message},
                messages.SUCCESS if report.ok else messages.ERROR)
            if report.ok and connection.kind == RAYNET:
                self._register_webhook(request, connection)

    @admin.action(description=gettext_lazy("Register webhook (Raynet)"),
                  permissions=["change"])
    def register_webhook(self, request: HttpRequest, queryset: Any) -> None:
        for connection in queryset:
            if connection.kind != RAYNET:
                self.message_user(request, _(
                    "“%(object)s”: only a Raynet connection has a webhook; this CRM's "
                    "changes are followed without one.") % {"object": connection},
                    messages.WARNING)
                continue
            self._register_webhook(request, connection)

    def _register_webhook(self, request: HttpRequest, connection: CrmConnection) -> None:
        from engine.crmstore.raynet_webhooks import register_and_say

        done, message = register_and_say(connection)
        level = {True: messages.SUCCESS, None: messages.WARNING}.get(done, messages.ERROR)
        self.message_user(request, _("“%(object)s”: %(message)s") % {
            "object": connection, "message": message}, level)


# --- what the CRM has no field for -------------------------------------------------------------
UNHELD_AGENDAS = ((Kind.CONTACTS, ContactRecord, gettext_lazy("Contacts")),
                  (Kind.CALENDAR, EventRecord, gettext_lazy("Calendar")))


def _holds_less(connection: CrmConnection) -> bool:
    try:
        backend = connection.backend_class
    except ImproperlyConfigured:
        return False
    return any(backend.unheld(kind) for kind, _record, _title in UNHELD_AGENDAS)


def unheld_text(backend: type[CrmBackend]) -> str:
    """The Exchange fields a kind of CRM has no place for, by agenda, in the reader's words
    (from its `unheld_fields`); "" for a CRM that holds them all."""
    parts = []
    for kind, record, title in UNHELD_AGENDAS:
        unheld = backend.unheld(kind)
        # In the record's order, as Outlook's card lists them.
        names = [f.name for f in dataclasses.fields(record) if f.name in unheld]
        labels = [_("time zone of a single event") if kind is Kind.CALENDAR and name == RULE_PART
                  else _(FIELD_LABELS[name]) if name in FIELD_LABELS else name
                  for name in names]
        if labels:
            parts.append(f"{title}: {', '.join(labels)}.")
    if not parts:
        return ""
    return _("%(crm)s has no field for these; they stay only in Exchange, neither synced nor "
             "overwritten: %(fields)s") % {"crm": backend.label, "fields": " ".join(parts)}


def diagnosis_of(connection: CrmConnection) -> CrmDiagnosis:
    try:
        backend = connection.backend_class
    except ImproperlyConfigured:
        return CrmDiagnosis(False, _("This kind of CRM is not configured on this server "
                                     "(SYNC_CRM_KINDS)."))
    return backend.diagnose(connection)


# --- profile options that need a capability of the CRM ----------------------------------------
LACKING = {
    Capability.CLASSIFICATION: gettext_lazy(
        "The organization's CRM (%(crm)s) has no classification tree: choose which persons "
        "another way."),
    Capability.EVENT_STATUSES: gettext_lazy(
        "The organization's CRM (%(crm)s) has no event statuses: leave this empty."),
}


def _crm_label(organization_id: int) -> str:
    kind = registry.connection_of(organization_id).kind
    return str(registry.backend_class(kind).label or kind)


class CrmCapabilityInline:
    """Mixed into an agenda's settings inline: the options that need what the organization's
    CRM lacks are hidden, and refused with a reason if posted all the same (a superuser's add
    page shows them all: the organization is chosen on it)."""

    # field -> the capability it needs; (field, value) -> the capability that value needs
    needs_capability: dict[str, Capability] = {}
    choice_needs_capability: dict[tuple[str, str], Capability] = {}

    def _lacking(self, request: HttpRequest, obj: Any) -> set[Capability]:
        if obj is not None and obj.organization_id:
            organization_id = obj.organization_id
        elif not sees_everything(request.user) and organization_of(request.user) is not None:
            organization_id = organization_of(request.user).pk
        else:
            return set()
        return set(Capability) - registry.capabilities_of(organization_id)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None):  # type: ignore[no-untyped-def]
        fieldsets = super().get_fieldsets(request, obj)  # type: ignore[misc]
        lacking = self._lacking(request, obj)
        hidden = {name for name, needed in self.needs_capability.items() if needed in lacking}
        if not hidden:
            return fieldsets
        return [(title, {**options, "fields": _without(options["fields"], hidden)})
                for title, options in fieldsets]

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any):  # type: ignore[no-untyped-def]
        kwargs["form"] = _refusing_what_crm_lacks(
            kwargs.get("form", self.form), self.needs_capability,  # type: ignore[attr-defined]
            self.choice_needs_capability)
        formset = super().get_formset(request, obj, **kwargs)  # type: ignore[misc]
        lacking = self._lacking(request, obj)
        for (name, value), needed in self.choice_needs_capability.items():
            field = formset.form.base_fields.get(name)
            if needed in lacking and field is not None:
                # Only the widget loses the choice: a value posted anyway is refused in words.
                field.widget.choices = [c for c in field.widget.choices if c[0] != value]
        return formset


def _without(fields: Any, hidden: set[str]) -> list[Any]:
    kept: list[Any] = []
    for entry in fields:
        if isinstance(entry, (list, tuple)):
            line = tuple(name for name in entry if name not in hidden)
            if line:
                kept.append(line)
        elif entry not in hidden:
            kept.append(entry)
    return kept


def _refusing_what_crm_lacks(form_class: type[forms.ModelForm],
                             needs: dict[str, Capability],
                             choice_needs: dict[tuple[str, str], Capability]) -> type:
    class CapabilityCheckedForm(form_class):  # type: ignore[misc, valid-type]
        def clean(self) -> dict[str, Any]:
            cleaned = super().clean()
            profile = cleaned.get("profile") or getattr(self.instance, "profile", None)
            organization_id = getattr(profile, "organization_id", None)
            if not organization_id:
                return cleaned
            lacking = set(Capability) - registry.capabilities_of(organization_id)
            used = [(name, needed) for name, needed in needs.items()
                    if name in self.fields and cleaned.get(name) not in (None, "", False)]
            used += [(name, needed) for (name, value), needed in choice_needs.items()
                     if name in self.fields and cleaned.get(name) == value]
            for name, needed in used:
                if needed in lacking and name not in self.errors:
                    self.add_error(name, LACKING[needed] % {"crm": _crm_label(organization_id)})
            return cleaned

    CapabilityCheckedForm.__name__ = form_class.__name__
    return CapabilityCheckedForm
