"""Per-agenda settings of a profile: calendar, contacts and e-mail import (PRODUCT.md §4).

Defaults are the ones of the XchgSync manual the product replaces.
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from profiles.choices import DeletionPolicy, Direction
from profiles.models.organizations import NO_ATTACHMENT_ROOTS
from profiles.validation import MAX_DAYS, normalize_extensions

DEFAULT_ATTACHMENT_TYPES = "doc;docx;xls;xlsx;pdf;jpg;jpeg;txt;png"
DAY_VALIDATORS = [MinValueValidator(0), MaxValueValidator(MAX_DAYS)]


class AgendaSettings(models.Model):
    """What every agenda has: its profile, and an Exchange folder chosen by id with its path."""

    organization_path = "profile__organization"

    profile = models.OneToOneField(
        "profiles.SyncProfile", on_delete=models.CASCADE, related_name="%(class)s"
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return gettext("%(settings)s of %(profile)s") % {
            "settings": self._meta.verbose_name, "profile": self.profile}


class CalendarSettings(AgendaSettings):
    class Scope(models.TextChoices):
        ALL = "all", _("All events")
        PAIRED = "paired", _("Only events with paired categories")

    direction = models.CharField(
        _("direction"), max_length=10, choices=Direction.choices, default=Direction.TWO_WAY
    )
    days_past = models.PositiveIntegerField(
        _("days into the past"), default=14, validators=DAY_VALIDATORS
    )
    days_future = models.PositiveIntegerField(
        _("days into the future"), default=31, validators=DAY_VALIDATORS
    )
    folder_id = models.CharField(_("Exchange folder id"), max_length=512, default="calendar")
    folder_path = models.CharField(_("Exchange folder"), max_length=1000, default="Calendar")
    skip_private = models.BooleanField(_("do not sync private events"), default=False)
    scope = models.CharField(
        _("which events"), max_length=10, choices=Scope.choices, default=Scope.ALL
    )
    default_category = models.ForeignKey(
        "crm.EventCategory",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("default CRM category"),
        help_text=_("Given to events imported from Exchange."),
    )
    imported_status = models.ForeignKey(
        "crm.EventStatus",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("CRM status of imported events"),
    )
    link_attendees = models.BooleanField(_("link CRM persons by attendee e-mail"), default=True)
    link_attendee_companies = models.BooleanField(
        _("also link every company of that person"), default=False
    )
    deletion_policy = models.CharField(
        _("when an event is deleted"),
        max_length=10,
        choices=DeletionPolicy.choices,
        default=DeletionPolicy.PROPAGATE,
    )

    class Meta:
        verbose_name = _("calendar settings")
        verbose_name_plural = _("calendar settings")

    def clean(self) -> None:
        errors: dict[str, str] = {}
        organization_id = self.profile.organization_id if self.profile_id else None
        for field in ("default_category", "imported_status"):
            chosen = getattr(self, field)
            if chosen is not None and organization_id and chosen.organization_id != organization_id:
                errors[field] = _("This belongs to another organization.")
        if errors:
            raise ValidationError(errors)


class CategoryPairing(models.Model):
    """A CRM event category and the Exchange category that means the same (HOTLINE = Hotline)."""

    organization_path = "profile__organization"

    profile = models.ForeignKey(
        "profiles.SyncProfile", on_delete=models.CASCADE, related_name="category_pairings"
    )
    crm_category = models.ForeignKey(
        "crm.EventCategory",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("CRM category"),
    )
    exchange_category = models.CharField(_("Exchange category"), max_length=255)

    class Meta:
        verbose_name = _("category pairing")
        verbose_name_plural = _("category pairings")
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "crm_category"],
                name="unique_crm_category_pairing",
                violation_error_message=_("This CRM category is already paired."),
            ),
            # Exchange compares category names without regard to case.
            models.UniqueConstraint(
                "profile",
                Lower("exchange_category"),
                name="unique_exchange_category_pairing",
                violation_error_message=_("This Exchange category is already paired."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.crm_category} = {self.exchange_category}"

    def clean(self) -> None:
        self.exchange_category = self.exchange_category.strip()
        if self.profile_id and self.crm_category_id and (
            self.crm_category.organization_id != self.profile.organization_id
        ):
            raise ValidationError({"crm_category": _("This belongs to another organization.")})


class ContactSettings(AgendaSettings):
    class Scope(models.TextChoices):
        """Which CRM persons the mailbox holds (PRODUCT.md §5, contact scope)."""

        OWNED = "owned", _("The persons the profile's CRM user owns or is assigned to")
        ORGANIZATION = "organization", _("The whole organization")
        BRANCH = "branch", _("A classification branch")

    direction = models.CharField(
        _("direction"), max_length=10, choices=Direction.choices, default=Direction.TWO_WAY
    )
    folder_id = models.CharField(_("Exchange folder id"), max_length=512, default="contacts")
    folder_path = models.CharField(_("Exchange folder"), max_length=1000, default="Contacts")
    only_categories = models.JSONField(
        _("only contacts with these Exchange categories"),
        default=list,
        blank=True,
        help_text=_("One category per line; leave empty for every contact."),
    )
    scope = models.CharField(
        _("which CRM persons"),
        max_length=20,
        choices=Scope.choices,
        default=Scope.OWNED,
        help_text=_("A person leaving the chosen ones stops being synced; it is not deleted."),
    )
    classification_node = models.ForeignKey(
        "crm.ClassificationNode",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("CRM classification branch"),
        help_text=_("With “A classification branch”: the persons of this node and its "
                    "sub-nodes are synced."),
    )
    deletion_policy = models.CharField(
        _("when a contact is deleted"),
        max_length=10,
        choices=DeletionPolicy.choices,
        default=DeletionPolicy.UNLINK,
    )

    class Meta:
        verbose_name = _("contact settings")
        verbose_name_plural = _("contact settings")

    def clean(self) -> None:
        node = self.classification_node
        if node is not None and self.profile_id and (
            node.organization_id != self.profile.organization_id
        ):
            raise ValidationError(
                {"classification_node": _("This belongs to another organization.")}
            )
        if self.scope == self.Scope.BRANCH and node is None:
            raise ValidationError({"classification_node": _("Choose the branch.")})
        if self.scope != self.Scope.BRANCH and node is not None:
            raise ValidationError({"classification_node": _(
                "A branch is used only when “A classification branch” is chosen above: "
                "choose it, or leave the branch empty.")})

    @property
    def branch_id(self) -> int | None:
        """The classification branch the persons come from, if that is the scope."""
        return self.classification_node_id if self.scope == self.Scope.BRANCH else None


class MailSettings(AgendaSettings):
    class Unmatched(models.TextChoices):
        KEEP = "keep", _("Import it unlinked")
        SKIP = "skip", _("Skip it")

    received_within_days = models.PositiveIntegerField(
        _("import only e-mails received within (days)"), default=31, validators=DAY_VALIDATORS
    )
    unmatched = models.CharField(
        _("an e-mail matching no CRM person"),
        max_length=10,
        choices=Unmatched.choices,
        default=Unmatched.KEEP,
    )
    save_attachments = models.BooleanField(_("save attachments"), default=False)
    attachment_directory = models.CharField(
        _("attachment directory"),
        max_length=1000,
        blank=True,
        help_text=_("A folder on the share, inside one of the organization's attachment roots."),
    )
    attachment_category = models.CharField(
        _("attachment category"), max_length=100, default="Příloha"
    )
    attachment_types = models.CharField(
        _("attachment types"),
        max_length=1000,
        default=DEFAULT_ATTACHMENT_TYPES,
        help_text=_("File extensions separated by “;”, e.g. pdf;docx;xlsx."),
    )
    max_attachment_mb = models.PositiveIntegerField(
        _("largest attachment saved (MB)"),
        default=50,
        validators=[MinValueValidator(1), MaxValueValidator(10_000)],
    )

    class Meta:
        verbose_name = _("e-mail import settings")
        verbose_name_plural = _("e-mail import settings")

    def clean(self) -> None:
        errors: dict[str, object] = {}
        try:
            self.attachment_types = normalize_extensions(self.attachment_types)
        except ValidationError as exc:
            errors["attachment_types"] = exc
        self.attachment_category = self.attachment_category.strip()
        if self.save_attachments and not self.attachment_category:
            errors["attachment_category"] = _("Saved attachments need a document category.")
        if self.save_attachments or self.attachment_directory:
            if not self.attachment_directory and self.save_attachments:
                errors["attachment_directory"] = _("Choose where attachments are saved.")
            else:
                try:
                    self._check_directory()
                except ValidationError as exc:
                    errors["attachment_directory"] = exc
        if errors:
            raise ValidationError(errors)

    def _check_directory(self) -> None:
        # The organization's roots, never the server's: those would reach every organization.
        try:
            organization = self.profile.organization
        except ObjectDoesNotExist:   # no organization chosen yet: the profile's form says so
            raise ValidationError(NO_ATTACHMENT_ROOTS, code="no_roots") from None
        organization.check_attachment_directory(self.attachment_directory)

    @property
    def extensions(self) -> frozenset[str]:
        return frozenset(self.attachment_types.split(";"))

    def folders(self) -> list[tuple[str, str]]:
        """(folder id, display path) pairs to import from; Inbox and Sent Items by default."""
        chosen = [(f.folder_id, f.folder_path) for f in self.profile.mail_folders.all()]
        return chosen or [("inbox", "Inbox"), ("sentitems", "Sent Items")]


class MailFolder(models.Model):
    """A mail folder chosen for import (none chosen: Inbox and Sent Items)."""

    organization_path = "profile__organization"

    profile = models.ForeignKey(
        "profiles.SyncProfile", on_delete=models.CASCADE, related_name="mail_folders"
    )
    folder_id = models.CharField(_("Exchange folder id"), max_length=512)
    folder_path = models.CharField(_("Exchange folder"), max_length=1000)

    class Meta:
        verbose_name = _("mail folder")
        verbose_name_plural = _("mail folders to import")
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "folder_id"],
                name="unique_mail_folder_per_profile",
                violation_error_message=_("This folder is already chosen."),
            )
        ]

    def __str__(self) -> str:
        return self.folder_path
