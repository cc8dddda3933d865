"""Organizations (the companies a server serves) and who belongs to which."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from profiles import secrets
from profiles.models.bound_secrets import EndpointBoundSecret
from profiles.models.self_service import UserOptionsField
from profiles.share_paths import check_inside_share_roots, parse_share_path
from profiles.validation import check_inside_roots, path_lines, paths_overlap

NO_ATTACHMENT_ROOTS = _(
    "No attachment folders are approved for this organization yet: ask the server's operator "
    "to set its attachment roots."
)


class AttachmentStorage(models.TextChoices):
    LOCAL = "local", _("A folder on this server (or a share mounted on it)")
    SMB = "smb", _("A Windows share (SMB), reached directly without a mount")


class Organization(EndpointBoundSecret, models.Model):
    organization_path = ""  # an organization is its own scope
    # The share's password follows the share: roots, user or port changed without entering it
    # again drop it (profiles/models/bound_secrets.py).
    secret_field = "share_secret"
    endpoint_fields = ("attachment_storage", "attachment_roots", "share_username", "share_port")
    name = models.CharField(_("name"), max_length=200, unique=True)
    alert_emails = models.TextField(
        _("alert e-mail addresses"),
        blank=True,
        help_text=_(
            "Extra addresses, one per line, told when a profile keeps failing. "
            "The organization's administrators are always told."
        ),
    )
    # The share is the operator's to divide: only a superuser sets this (OrganizationAdmin).
    attachment_roots = models.TextField(
        _("attachment roots"),
        blank=True,
        help_text=_(
            "Folders on the share, one full path per line, under which this organization's "
            "profiles may save attachments. Each lies inside the server's ATTACHMENT_ROOTS and "
            "apart from every other organization's roots. Only a superuser sets them."
        ),
    )
    # Where the roots are: a local folder, or straight on a Windows share. Like the roots, the
    # operator's to set (OrganizationAdmin).
    attachment_storage = models.CharField(
        _("attachment storage"), max_length=10, choices=AttachmentStorage.choices,
        default=AttachmentStorage.LOCAL,
        help_text=_("On a Windows share, the attachment roots are written "
                    "\\\\server\\share\\folder, all on one server."),
    )
    share_username = models.CharField(
        _("share user name"), max_length=200, blank=True,
        help_text=_("The Windows account the server signs in to the share with (NTLM), e.g. "
                    "FIRMA\\xchgsync."),
    )
    share_secret = models.TextField(_("share password (encrypted)"), blank=True, editable=False)
    share_port = models.PositiveIntegerField(
        _("share port"), default=445, validators=[MinValueValidator(1), MaxValueValidator(65535)],
    )
    share_requires_encryption = models.BooleanField(
        _("require encryption"), default=True,
        help_text=_("SMB 3 encryption is used whenever the file server offers it; ticked, a "
                    "server that does not offer it is refused."),
    )
    self_service = UserOptionsField(
        _("users may change"),
        default=list,
        blank=True,
        help_text=_(
            "The options each user may change on their own profile's page, “My sync "
            "settings”, with the same checks as here. None ticked: only administrators change "
            "profiles. Every change a user makes is recorded in the audit log."
        ),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")

    def __str__(self) -> str:
        return self.name

    def clean_fields(self, exclude: Collection[str] | None = None) -> None:
        # Here rather than in clean(): a form without the field (an organization
        # administrator's, where it is read-only) must not be refused for its value.
        errors: dict[str, list[ValidationError]] = {}
        try:
            super().clean_fields(exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if "attachment_roots" not in (exclude or ()):
            self.attachment_roots = "\n".join(path_lines(self.attachment_roots))
            problems = self.attachment_root_problems(
                Organization.objects.exclude(pk=self.pk).exclude(attachment_roots=""))
            if problems:
                errors.setdefault("attachment_roots", []).extend(problems)
        if errors:
            raise ValidationError(errors)

    def on_share(self) -> bool:
        return self.attachment_storage == AttachmentStorage.SMB

    @property
    def has_share_secret(self) -> bool:
        return bool(self.share_secret)

    def set_share_secret(self, plaintext: str) -> None:
        self.share_secret = secrets.encrypt(plaintext) if plaintext else ""

    def share_password(self) -> str:
        return secrets.decrypt(self.share_secret) if self.share_secret else ""

    def user_options(self) -> frozenset[str]:
        """The options of their own profiles this organization's users may change."""
        return frozenset(self.self_service or ())

    def attachment_root_list(self) -> list[str]:
        return path_lines(self.attachment_roots)

    def attachment_root_problems(self, others: Iterable[Organization]) -> list[ValidationError]:
        """What is wrong with the roots: outside the server's ATTACHMENT_ROOTS, or sharing
        folders with another organization's (whose administrator could then name, reuse or
        fill this one's files)."""
        if self.on_share():
            return self._share_root_problems(others)
        problems: list[ValidationError] = []
        others = [o for o in others if not o.on_share()]
        for root in self.attachment_root_list():
            try:
                check_inside_roots(root, settings.ATTACHMENT_ROOTS)
            except ValidationError as exc:
                problems.append(exc if exc.code != "outside_roots" else ValidationError(
                    _("%(root)s is not inside the server's ATTACHMENT_ROOTS (%(roots)s).")
                    % {"root": root, "roots": ", ".join(settings.ATTACHMENT_ROOTS)},
                    code="outside_server_roots"))
                continue
            for other in others:
                clash = next((r for r in other.attachment_root_list()
                              if os.path.isabs(r) and paths_overlap(root, r)), None)
                if clash is not None:
                    problems.append(ValidationError(
                        _("%(root)s overlaps %(other)s, an attachment root of "
                          "%(organization)s: each organization needs folders of its own.")
                        % {"root": root, "other": clash, "organization": other.name},
                        code="overlapping_roots"))
        return problems

    def _share_root_problems(self, others: Iterable[Organization]) -> list[ValidationError]:
        """Roots on a Windows share: well formed (tells no `..`), on one server (one user
        signs in), apart from every other organization's folders on that share. The server's
        ATTACHMENT_ROOTS are about its own disk; the share's server is held to the rules of
        every outbound connection instead (security/outbound.py) when it is connected to."""
        problems: list[ValidationError] = []
        mine = []
        for root in self.attachment_root_list():
            try:
                mine.append(parse_share_path(root))
            except ValidationError as exc:
                problems.append(exc)
        if len({path.server.casefold() for path in mine}) > 1:
            problems.append(ValidationError(
                _("All attachment roots on a share must be on one server: one user signs in."),
                code="several_servers"))
        for other in others:
            if not other.on_share():
                continue
            for text in other.attachment_root_list():
                try:
                    theirs = parse_share_path(text)
                except ValidationError:
                    continue
                for root in mine:
                    if root.contains(theirs) or theirs.contains(root):
                        problems.append(ValidationError(
                            _("%(root)s overlaps %(other)s, an attachment root of "
                              "%(organization)s: each organization needs folders of its own.")
                            % {"root": root, "other": text, "organization": other.name},
                            code="overlapping_roots"))
        return problems

    def approved_attachment_roots(self) -> list[str]:
        """The roots attachments may be saved under now: those inside the server's
        ATTACHMENT_ROOTS as they are today (the operator may have narrowed them since the
        roots were saved, or the database may hold what validation refused)."""
        approved: list[str] = []
        for root in self.attachment_root_list():
            try:
                if self.on_share():
                    approved.append(str(parse_share_path(root)))
                    continue
                check_inside_roots(root, settings.ATTACHMENT_ROOTS)
            except ValidationError:
                continue
            approved.append(root)
        return approved

    def check_attachment_directory(self, directory: str) -> str:
        """The directory resolved (after `..` and symlinks) if it lies inside one of the
        organization's approved roots; never the server's roots in their place."""
        roots = self.approved_attachment_roots()
        if not roots:
            raise ValidationError(NO_ATTACHMENT_ROOTS, code="no_roots")
        if self.on_share():
            return str(check_inside_share_roots(directory, roots))
        return check_inside_roots(directory, roots)


class Membership(models.Model):
    """A user's place in one organization; an organization admin manages that organization."""

    class Role(models.TextChoices):
        ADMIN = "admin", _("Organization administrator")
        USER = "user", _("User")

    organization_path = "organization"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership",
        verbose_name=_("user"),
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships",
        verbose_name=_("organization"),
    )
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.USER)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return gettext("%(user)s in %(organization)s (%(role)s)") % {
            "user": self.user, "organization": self.organization,
            "role": self.get_role_display()}

    def save(self, *args: object, **kwargs: object) -> None:
        super().save(*args, **kwargs)
        # Organization administrators work in the admin site, which admits staff only.
        user = self.user
        wants_staff = self.role == self.Role.ADMIN or user.is_superuser
        if user.is_staff != wants_staff:
            user.is_staff = wants_staff
            user.save(update_fields=["is_staff"])
