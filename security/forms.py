"""The sign-in forms of the user pages and of the admin, throttled (security.throttle)."""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import ngettext

from security import throttle


class ThrottledSignInMixin:
    """Refuses sign-in while locked out, and counts every failed authentication."""

    request: Any
    cleaned_data: dict[str, Any]
    user_cache: Any

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        self._refuse_if_locked_out(username)
        try:
            cleaned = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            # Only a failed authentication counts; an inactive or non-staff account that
            # gave the right password is refused by its own rule, not guessed at.
            if self.user_cache is None and username and self.cleaned_data.get("password"):
                throttle.record_failure(self.request, username)
                self._refuse_if_locked_out(username)
            raise
        if self.user_cache is not None:
            throttle.forget_account_failures(username)
        return cleaned

    def _refuse_if_locked_out(self, username: str) -> None:
        remaining = throttle.lockout_remaining(self.request, username)
        if remaining is None:
            return
        minutes = max(1, math.ceil(remaining.total_seconds() / 60))
        # The same words whether or not the account exists: nothing to learn from them.
        raise forms.ValidationError(
            ngettext(
                "Too many failed sign-in attempts. Try again in %(minutes)d minute.",
                "Too many failed sign-in attempts. Try again in %(minutes)d minutes.",
                minutes,
            ) % {"minutes": minutes},
            code="locked_out",
        )


class ThrottledAuthenticationForm(ThrottledSignInMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledSignInMixin, AdminAuthenticationForm):
    pass

