"""Admin forms: write-only secrets, one-per-line lists, and checks that span several inlines."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.models import BaseInlineFormSet
from django.utils.translation import gettext_lazy as _

from profiles.models import CalendarSettings, ContactSettings, MailboxConnection, SyncProfile
from profiles.secrets import SecretKeyError
from profiles.validation import split_lines


class SecretInput(forms.PasswordInput):
    """Never renders a value back into the page, whatever the form holds."""

    def __init__(self) -> None:
        super().__init__(render_value=False, attrs={"autocomplete": "new-password"})


class WriteOnlySecretForm(forms.ModelForm):
    """A form whose `secret_field` sets an encrypted secret; left blank, the old one stays."""

    secret_field = "secret"
    has_secret_attribute = "has_secret"
    set_secret_method = "set_secret"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields[self.secret_field]
        if getattr(self.instance, self.has_secret_attribute):
            field.help_text = _("A secret is stored (encrypted). Leave blank to keep it.")
        else:
            field.help_text = _("Stored encrypted; it is never shown again.")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        new_secret = cleaned.get(self.secret_field)
        if new_secret:
            try:
                getattr(self.instance, self.set_secret_method)(new_secret)
            except SecretKeyError as exc:
                raise ValidationError(str(exc)) from exc
        return cleaned


def _https_by_default(db_field: models.Field, **kwargs: Any) -> forms.Field | None:
    """A URL typed without a scheme means https (Django 6's default, chosen now)."""
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


# The fields of one kind of connection only (or of OAuth only), hidden for the other.
EWS_ONLY_FIELDS = ("ews_url", "server_version", "auth_type", "access", "username")
GRAPH_ONLY_FIELDS = ("graph_url", "graph_mailbox")
OAUTH_FIELDS = ("tenant_id", "client_id", "token_url")


class ConnectionForm(WriteOnlySecretForm):
    """A connection of either kind; what does not apply to the chosen kind is neither required
    nor kept (connection_kind.js hides it on the page).

    A Graph connection keeps its URL and its test mailbox in the columns an EWS connection keeps
    its EWS URL and service account in; the form shows them as fields of their own, so that the
    EWS ones can be hidden whole."""

    secret = forms.CharField(
        label=_("password, client secret or certificate"), required=False, strip=False,
        widget=SecretInput(),
    )
    graph_url = forms.URLField(
        label=_("Microsoft Graph URL"), required=False, max_length=500, assume_scheme="https",
        help_text=_("Leave blank for Microsoft's global cloud (https://graph.microsoft.com/v1.0);"
                    " give it for a national cloud or a proxy."))
    graph_mailbox = forms.CharField(
        label=_("Mailbox to test with"), required=False, max_length=254,
        help_text=_("An e-mail address: the mailbox “Test connection” opens. Leave blank to "
                    "open the first profile's mailbox."))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.kind == MailboxConnection.Kind.GRAPH:
            self.initial.update({"graph_url": self.instance.ews_url, "ews_url": "",
                                 "graph_mailbox": self.instance.username, "username": ""})
        # Set by the kind when it is Graph (the fields are hidden then).
        for name in ("auth_type", "access"):
            if name in self.fields:
                self.fields[name].required = False
        self.fields["secret"].help_text += " " + _(
            "For app-only OAuth with a certificate, paste the private key and its certificate "
            "in PEM, one after the other (-----BEGIN PRIVATE KEY----- … -----END "
            "CERTIFICATE-----); upload the certificate to the app registration in Entra ID.")
        if self.instance.has_secret:
            self.fields["secret"].help_text += " " + _(
                "A stored secret is only sent where it was entered for: changing the kind, the "
                "URL, the token endpoint, the tenant, the client id, the authentication or the "
                "user name, or turning TLS verification off, drops it (and the profiles' own "
                "passwords) unless you enter it again here.")

    class Meta:
        model = MailboxConnection
        fields = "__all__"
        formfield_callback = _https_by_default

    class Media:
        js = ["profiles/connection_kind.js"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "kind" not in self.fields:   # shown read-only: nothing is changed
            return cleaned
        kinds, auth = MailboxConnection.Kind, MailboxConnection.Auth
        if cleaned.get("kind") == kinds.GRAPH:
            # Graph signs in app-only, reaching every mailbox the app may open.
            self._ignore(EWS_ONLY_FIELDS)
            cleaned.update({
                "ews_url": cleaned.get("graph_url") or "",
                "username": cleaned.get("graph_mailbox") or "",
                "auth_type": auth.OAUTH2, "access": MailboxConnection.Access.IMPERSONATION,
                "server_version": ""})
            return cleaned
        self._ignore(GRAPH_ONLY_FIELDS)
        cleaned["auth_type"] = cleaned.get("auth_type") or auth.NTLM
        cleaned["access"] = cleaned.get("access") or MailboxConnection.Access.IMPERSONATION
        if cleaned["auth_type"] != auth.OAUTH2:
            # An Entra ID app is used by OAuth only: left over from an earlier choice, it goes.
            self._ignore(OAUTH_FIELDS)
            cleaned.update(dict.fromkeys(OAUTH_FIELDS, ""))
        return cleaned

    def _ignore(self, names: tuple[str, ...]) -> None:
        """Hidden fields' values were never meant to be sent: no error of theirs stops a save."""
        for name in names:
            self._errors.pop(name, None)
            self.cleaned_data.pop(name, None)


class ProfileForm(WriteOnlySecretForm):
    secret_field = "mailbox_secret"
    has_secret_attribute = "has_mailbox_secret"
    set_secret_method = "set_mailbox_secret"

    mailbox_secret = forms.CharField(
        label=_("mailbox password"), required=False, strip=False, widget=SecretInput()
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.has_mailbox_secret:
            self.fields["mailbox_secret"].help_text += " " + _(
                "It is only sent where it was entered for: changing the connection or the "
                "mailbox user name drops it unless you enter it again here.")

    class Meta:
        model = SyncProfile
        fields = "__all__"


class LinesField(forms.CharField):
    """A list of strings edited one per line."""

    widget = forms.Textarea(attrs={"rows": 3})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return "\n".join(value)
        return value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return value
        return split_lines(super().to_python(value) or "")


class ContactSettingsForm(forms.ModelForm):
    only_categories = LinesField(
        label=_("only contacts with these Exchange categories"),
        required=False,
        help_text=_("One category per line; leave empty for every contact."),
    )

    class Meta:
        model = ContactSettings
        fields = "__all__"


class OneToOneInlineFormSet(BaseInlineFormSet):
    """The inline of a one-to-one record that the parent's save() already created with defaults.

    Saving a "new" one updates the row the parent created instead of inserting a second.
    With `save_untouched`, its form is saved even untouched, so the defaults shown on an add
    page are the ones stored.
    """

    save_untouched = True

    def _construct_form(self, i: int, **kwargs: Any) -> forms.Form:
        form = super()._construct_form(i, **kwargs)
        if self.save_untouched and form.instance.pk is None:
            form.has_changed = lambda: True  # type: ignore[method-assign]
        return form

    def save_new(self, form: forms.ModelForm, commit: bool = True) -> Any:
        obj = form.save(commit=False)
        setattr(obj, self.fk.name, self.instance)
        existing = (
            type(obj)._default_manager.filter(**{self.fk.name: self.instance})
            .values_list("pk", flat=True)
            .first()
        )
        if existing is not None:
            obj.pk = existing
            obj._state.adding = False
        if commit:
            obj.save()
            form.save_m2m()
        return obj


class MembershipFormSet(OneToOneInlineFormSet):
    """A user may have no organization (e.g. another superuser): an empty form stays empty."""

    save_untouched = False


class CategoryPairingFormSet(BaseInlineFormSet):
    """Pairings are unique on both sides, and "only paired categories" needs at least one."""

    sibling_formsets: list[BaseInlineFormSet] = []

    def clean(self) -> None:
        super().clean()
        kept = [
            form
            for form in self.forms
            if form.is_valid() and form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        seen: dict[str, str] = {}
        for form in kept:
            name = (form.cleaned_data.get("exchange_category") or "").strip()
            key = name.casefold()
            if key in seen:
                raise ValidationError(
                    _("The Exchange category “%(name)s” is paired twice.") % {"name": name}
                )
            seen[key] = name
        if self._calendar_scope() == CalendarSettings.Scope.PAIRED and not kept:
            raise ValidationError(
                _("“Only events with paired categories” needs at least one category pairing.")
            )

    def _calendar_scope(self) -> str | None:
        for formset in self.sibling_formsets:
            if formset.model is CalendarSettings and formset.is_valid():
                for form in formset.forms:
                    if form.cleaned_data:
                        return form.cleaned_data.get("scope")
        instance = self.instance
        if instance.pk and hasattr(instance, "calendarsettings"):
            return instance.calendarsettings.scope
        return None
