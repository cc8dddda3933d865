"""Signing in and out, and changing the password, on the user pages."""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY
from django.urls import reverse

from tests.portal.base import PortalTestCase


class AccountTestCase(PortalTestCase):
    def test_signing_in_leads_to_the_page_asked_for(self) -> None:
        response = self.client.get(reverse("portal:history"))
        login = reverse("portal:login") + "?next=" + reverse("portal:history")
        self.assertRedirects(response, login)
        page = self.client.get(login)
        self.assertContains(page, '<label for="id_username">')
        self.assertContains(page, '<label for="id_password">')
        response = self.client.post(login, {"username": "dave", "password": self.password,
                                            "next": reverse("portal:history")})
        self.assertRedirects(response, reverse("portal:history"))

    def test_signing_in_without_a_target_leads_to_the_dashboard(self) -> None:
        response = self.client.post(reverse("portal:login"),
                                    {"username": "dave", "password": self.password})
        self.assertRedirects(response, reverse("portal:dashboard"))

    def test_a_wrong_password_is_refused_with_a_message(self) -> None:
        response = self.client.post(reverse("portal:login"),
                                    {"username": "dave", "password": "wrong"})
        assert response.status_code == 200
        self.assertContains(response, "Please enter a correct username and password")
        assert SESSION_KEY not in self.client.session

    def test_signing_out_is_a_post_and_leads_to_the_sign_in_page(self) -> None:
        self.sign_in(self.dave)
        assert self.client.get(reverse("portal:logout")).status_code == 405
        response = self.client.post(reverse("portal:logout"))
        self.assertRedirects(response, reverse("portal:login"))
        assert SESSION_KEY not in self.client.session

    def test_changing_the_password(self) -> None:
        self.sign_in(self.dave)
        page = self.client.get(reverse("portal:password_change"))
        self.assertContains(page, '<label for="id_old_password">')
        response = self.client.post(reverse("portal:password_change"), {
            "old_password": self.password, "new_password1": "a-new-long-passphrase-42",
            "new_password2": "a-new-long-passphrase-42"})
        self.assertRedirects(response, reverse("portal:password_changed"))
        self.dave.refresh_from_db()
        assert self.dave.check_password("a-new-long-passphrase-42")
        # Still signed in after the change (the session hash was updated).
        assert self.client.get(reverse("portal:dashboard")).status_code == 200

    def test_a_weak_new_password_is_refused_and_said_why(self) -> None:
        self.sign_in(self.dave)
        response = self.client.post(reverse("portal:password_change"), {
            "old_password": self.password, "new_password1": "123", "new_password2": "123"})
        assert response.status_code == 200
        self.assertContains(response, "This password is too short")
        self.dave.refresh_from_db()
        assert self.dave.check_password(self.password)

    def test_the_admin_keeps_its_own_sign_in_page(self) -> None:
        response = self.client.get(reverse("admin:index"))
        assert response["Location"].startswith(reverse("admin:login"))
