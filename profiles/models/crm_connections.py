"""CRM connections: which CRM an organization's profiles sync with, and how it is reached.

The kind names a CrmBackend in SYNC_CRM_KINDS (engine/crmstore/registry.py); the kind declares
the settings its connection asks for. Plain values are kept in `settings`; secret ones (an API
key, a password) all together in one encrypted token, which follows its endpoint as a mailbox
connection's secret does (profiles/models/bound_secrets.py).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from profiles import crm_kinds, secrets
from profiles.models.bound_secrets import EndpointBoundSecret
from profiles.models.organizations import Organization


def setting_key(kind: str, name: str) -> str:
    """How a kind's setting is called in forms and in validation errors: each kind's own, so
    the fields of every kind can stand in one form."""
    return f"{kind}__{name}"


class CrmConnection(EndpointBoundSecret, models.Model):
    organization_path = "organization"
    # Where the secrets are sent: another kind, or another address or user, drops the stored
    # secrets unless they are entered again in the same save.
    secret_field = "secret_token"
    endpoint_fields = ("kind", "settings")

    organization = models.OneToOneField(
        "profiles.Organization", on_delete=models.CASCADE, related_name="crm_connection",
        verbose_name=_("organization"),
    )
    kind = models.CharField(_("kind of CRM"), max_length=100, default=crm_kinds.DEFAULT_KIND)
    settings = models.JSONField(_("settings"), default=dict, blank=True)
    secret_token = models.TextField(editable=False, blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["organization__name"]
        verbose_name = _("CRM connection")
        verbose_name_plural = _("CRM connections")

    def __str__(self) -> str:
        return gettext("CRM of %(organization)s") % {"organization": self.organization}

    @property
    def backend_class(self) -> crm_kinds.CrmKind:
        return crm_kinds.kind_class(self.kind)

    def setting(self, name: str) -> str:
        return str((self.settings or {}).get(name, ""))

    # --- the secrets ------------------------------------------------------------------------
    def get_secrets(self) -> dict[str, str]:
        return json.loads(secrets.decrypt(self.secret_token)) if self.secret_token else {}

    def get_secret(self, name: str) -> str:
        return self.get_secrets().get(name, "")

    def stored_secret_names(self) -> set[str]:
        """Which secrets are stored (to tell the form), without ever showing them."""
        try:
            return set(self.get_secrets())
        except secrets.SecretKeyError:
            return set()   # unreadable: the form asks for them again

    def update_secrets(self, entered: dict[str, str]) -> None:
        """Store the secrets entered now beside the kind's stored ones; after a change of kind
        or endpoint only the ones entered now are kept (the others were for elsewhere)."""
        names = {field.name for field in self.backend_class.settings_fields if field.secret}
        kept = {} if self.endpoint_changed() else {
            name: value for name, value in self.get_secrets().items() if name in names}
        merged = {**kept, **{name: value for name, value in entered.items() if value}}
        self.secret_token = secrets.encrypt(json.dumps(merged)) if merged else ""

    def remember_endpoint(self) -> None:
        super().remember_endpoint()
        # A copy: settings changed in place must still differ from the stored ones.
        if self._stored_endpoint is not None:
            self._stored_endpoint["settings"] = dict(self._stored_endpoint["settings"] or {})

    # --- validation -------------------------------------------------------------------------
    def clean(self) -> None:
        if not crm_kinds.is_known(self.kind):
            raise ValidationError({"kind": _(
                "This kind of CRM is not configured on this server (SYNC_CRM_KINDS).")})
        stored = set() if self.secret_left_behind() else self.stored_secret_names()
        errors: dict[str, str] = {}
        for field in self.backend_class.settings_fields:
            if not field.required:
                continue
            present = field.name in stored if field.secret else bool(self.setting(field.name))
            if present:
                continue
            if field.secret and self.secret_left_behind():
                message = _("The kind or the settings changed: enter %(field)s again. A stored "
                            "secret is only sent where it was entered for.")
            else:
                message = _("%(field)s is required for this kind of CRM.")
            errors[setting_key(self.kind, field.name)] = message % {"field": field.label}
        if errors:
            raise ValidationError(errors)


@receiver(post_save, sender=Organization, dispatch_uid="crm_connection_for_new_organization")
def give_new_organization_the_builtin_crm(sender: type[Organization], instance: Organization,
                                          created: bool, raw: bool, **kwargs: Any) -> None:
    # Seen in the admin from the start, so its kind can be switched; fixtures bring their own.
    if created and not raw:
        CrmConnection.objects.get_or_create(organization=instance)
