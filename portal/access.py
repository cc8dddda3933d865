"""Who sees what on the user pages.

A user sees the sync profiles they own (`SyncProfile.user`) and what hangs off them: runs,
their items, duplicate candidates. An organization administrator sees every profile of their
organization, and an administrator (superuser) every profile. Everything else does not exist:
an object out of sight is answered with 404, exactly like a missing one, so ids cannot be
probed.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from engine.models import DuplicateCandidate, Run
from profiles.models import SyncProfile
from profiles.scoping import is_organization_admin, organization_of, sees_everything

Viewer = AbstractBaseUser | AnonymousUser


def visible_profiles(user: Viewer) -> QuerySet[SyncProfile]:
    profiles = SyncProfile.objects.all()
    if not (user.is_authenticated and user.is_active):
        return profiles.none()
    if sees_everything(user):
        return profiles
    if is_organization_admin(user):
        return profiles.filter(organization=organization_of(user))
    return profiles.filter(user=user)


def sees_several_users(user: Viewer) -> bool:
    """Administrators see other people's profiles: the pages then say whose each one is."""
    return sees_everything(user) or is_organization_admin(user)


def visible_runs(user: Viewer) -> QuerySet[Run]:
    return Run.objects.filter(profile__in=visible_profiles(user))


def visible_candidates(user: Viewer) -> QuerySet[DuplicateCandidate]:
    return DuplicateCandidate.objects.filter(profile__in=visible_profiles(user))


def profile_or_404(user: Viewer, pk: int) -> SyncProfile:
    return get_object_or_404(visible_profiles(user), pk=pk)


def run_or_404(user: Viewer, pk: int) -> Run:
    return get_object_or_404(visible_runs(user).select_related("profile"), pk=pk)


def candidate_or_404(user: Viewer, pk: int) -> DuplicateCandidate:
    return get_object_or_404(visible_candidates(user).select_related("profile"), pk=pk)
