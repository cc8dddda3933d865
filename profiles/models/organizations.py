"""Organizations (the companies a server serves) and who belongs to which."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Organization(models.Model):
    organization_path = ""  # an organization is its own scope
    name = models.CharField(_("name"), max_length=200, unique=True)
    alert_emails = models.TextField(
        _("alert e-mail addresses"),
        blank=True,
        help_text=_(
            "Extra addresses, one per line, told when a profile keeps failing. "
            "The organization's administrators are always told."
        ),
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's place in one organization; an organization admin manages that organization."""

    class Role(models.TextChoices):
        ADMIN = "admin", _("Organization administrator")
        USER = "user", _("User")

    organization_path = "organization"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.USER)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.get_role_display()})"

    def save(self, *args: object, **kwargs: object) -> None:
        super().save(*args, **kwargs)
        # Organization administrators work in the admin site, which admits staff only.
        user = self.user
        wants_staff = self.role == self.Role.ADMIN or user.is_superuser
        if user.is_staff != wants_staff:
            user.is_staff = wants_staff
            user.save(update_fields=["is_staff"])
