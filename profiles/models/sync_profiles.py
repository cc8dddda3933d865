"""A user's sync profile: which mailbox, through which connection, how often, which policies."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _

from profiles import secrets
from profiles.choices import ConflictPolicy
from profiles.models.bound_secrets import EndpointBoundSecret


class SyncProfile(EndpointBoundSecret, models.Model):
    organization_path = "organization"
    # A profile's own password goes to its connection as its user name (bound_secrets.py).
    secret_field = "mailbox_secret_token"
    endpoint_fields = ("connection", "mailbox_username")

    organization = models.ForeignKey(
        "profiles.Organization", on_delete=models.CASCADE, related_name="profiles",
        verbose_name=_("organization"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="sync_profiles",
        verbose_name=_("user"),
        help_text=_("Who signs in to see this profile's history and duplicates."),
    )
    mailbox = models.EmailField(_("mailbox SMTP address"), max_length=254)
    crm_user = models.ForeignKey(
        "crm.CrmUser",
        on_delete=models.PROTECT,
        related_name="sync_profiles",
        verbose_name=_("CRM user"),
        help_text=_("The CRM user whose events and contacts this mailbox holds."),
    )
    connection = models.ForeignKey(
        "profiles.MailboxConnection",
        on_delete=models.PROTECT,
        related_name="profiles",
        verbose_name=_("connection"),
    )
    mailbox_username = models.CharField(
        _("mailbox user name"),
        max_length=254,
        blank=True,
        help_text=_("Only for connections where each profile brings its own credentials."),
    )
    mailbox_secret_token = models.TextField(editable=False, blank=True)

    interval_minutes = models.PositiveIntegerField(
        _("check for changes every (minutes)"),
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
    )
    active = models.BooleanField(_("active"), default=True)
    sync_calendar = models.BooleanField(_("sync events"), default=True)
    sync_contacts = models.BooleanField(_("sync contacts"), default=True)
    import_mail = models.BooleanField(_("import e-mails"), default=False)

    conflict_policy = models.CharField(
        _("when a record changed on both sides"),
        max_length=10,
        choices=ConflictPolicy.choices,
        default=ConflictPolicy.NEWEST,
    )
    mass_delete_min_items = models.PositiveIntegerField(
        _("hold deletions of more than (items)"),
        default=20,
        help_text=_("A run that would delete more items than this, and more than the share "
                    "below, waits for an administrator's approval."),
    )
    mass_delete_min_percent = models.PositiveSmallIntegerField(
        _("… and more than (% of linked items)"),
        default=10,
        validators=[MaxValueValidator(100)],
    )
    mass_create_min_items = models.PositiveIntegerField(
        _("hold creations of more than (items)"),
        default=50,
        help_text=_("A run, other than the profile's first, that would create more items than "
                    "this in the CRM or in Exchange waits for an administrator's approval."),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["organization__name", "mailbox"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "mailbox"], name="unique_mailbox_per_organization"
            )
        ]
        verbose_name = _("sync profile")
        verbose_name_plural = _("sync profiles")

    def __str__(self) -> str:
        return self.mailbox

    def save(self, *args: object, **kwargs: object) -> None:
        self.mailbox = self.mailbox.strip().lower()
        with transaction.atomic():
            super().save(*args, **kwargs)
            self.ensure_agenda_settings()

    def ensure_agenda_settings(self) -> None:
        """Every profile has settings for each agenda, with the product's defaults."""
        from profiles.models.agendas import CalendarSettings, ContactSettings, MailSettings

        for model in (CalendarSettings, ContactSettings, MailSettings):
            model.objects.get_or_create(profile=self)

    # --- per-user credentials ------------------------------------------------------------
    @property
    def has_mailbox_secret(self) -> bool:
        return bool(self.mailbox_secret_token)

    def set_mailbox_secret(self, plaintext: str) -> None:
        self.mailbox_secret_token = secrets.encrypt(plaintext) if plaintext else ""

    def get_mailbox_secret(self) -> str:
        return secrets.decrypt(self.mailbox_secret_token) if self.mailbox_secret_token else ""

    def clean(self) -> None:
        # Normalized before the uniqueness check: Dave@Acme.example is dave@acme.example.
        self.mailbox = (self.mailbox or "").strip().lower()
        errors: dict[str, str] = {}
        organization_id = self.organization_id
        connection = self.connection if self.connection_id else None
        if organization_id is not None:
            if connection is not None and connection.organization_id != organization_id:
                errors["connection"] = _("This connection belongs to another organization.")
            if self.crm_user_id and self.crm_user.organization_id != organization_id:
                errors["crm_user"] = _("This CRM user belongs to another organization.")
            membership = getattr(self.user, "membership", None) if self.user_id else None
            if membership is not None and membership.organization_id != organization_id:
                errors["user"] = _("This user is a member of another organization.")
        if connection is not None and not connection.uses_own_credentials:
            if not self.mailbox_username:
                errors["mailbox_username"] = _(
                    "The connection “%(name)s” signs in with each profile's own credentials: "
                    "give this mailbox's user name."
                ) % {"name": connection.name}
            if not self.has_mailbox_secret:
                errors["mailbox_secret"] = _("Give this mailbox's password.")
            elif self.secret_left_behind():
                errors["mailbox_secret"] = _(
                    "The connection or the mailbox user name changed: enter this mailbox's "
                    "password again. A stored password is only sent where it was entered for.")
        if errors:
            raise ValidationError(errors)
