"""Who may see what: every object belongs to one organization.

Superusers see every organization; an organization administrator sees only their own.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from profiles.models.organizations import Membership, Organization


def organization_of(user: AbstractBaseUser | AnonymousUser) -> Organization | None:
    if not user.is_authenticated:
        return None
    try:
        return user.membership.organization
    except Membership.DoesNotExist:
        return None


def is_organization_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    try:
        return user.membership.role == Membership.Role.ADMIN
    except Membership.DoesNotExist:
        return False


def sees_everything(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)
