"""Whether the menu offers "My sync settings": only to a user with something to change there."""

from __future__ import annotations

from django import template

from portal.access import Viewer
from portal.settings_page import own_profiles

register = template.Library()


@register.filter
def has_own_settings(user: Viewer) -> bool:
    # A user has a profile or two: reading their organizations is cheaper than a JSON query
    # that every database spells differently.
    return any(profile.organization.user_options() for profile in own_profiles(user))
