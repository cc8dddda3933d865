"""The organization's attachment share in the admin: set by a superuser only, its password
write-only and encrypted, and a "Test the attachment share" action against a real Samba."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages

from profiles.models import Organization
from tests.base import BaseTestCase
from tests.samba import PASSWORD, USER, Samba, samba  # noqa: F401 (fixture)

CHANGE = "/admin/profiles/organization/{}/change/"
CHANGELIST = "/admin/profiles/organization/"


class AttachmentShareAdminTestCase(BaseTestCase):
    @pytest.fixture(autouse=True)
    def _samba(self, samba: Samba) -> None:  # noqa: F811
        self.samba = samba

    def _form(self, organization: Organization, **values: Any) -> dict[str, Any]:
        data = {"name": organization.name, "alert_emails": "",
                "attachment_roots": self.samba.unc("attachments", "admin-acme"),
                "attachment_storage": "smb", "share_username": USER,
                "share_port": self.samba.port, "share_requires_encryption": "on",
                "share_password": PASSWORD}
        data.update(values)
        return data

    def _messages(self, response: Any) -> list[str]:
        return [str(m) for m in get_messages(response.wsgi_request)]

    def test_a_superuser_sets_the_share_and_its_password_is_stored_encrypted(self) -> None:
        self.client.force_login(self.alice)
        response = self.client.post(CHANGE.format(self.acme.pk), self._form(self.acme))
        assert response.status_code == 302, response.content.decode()[:3000]
        self.acme.refresh_from_db()
        assert self.acme.on_share() and self.acme.share_password() == PASSWORD
        assert PASSWORD not in self.acme.share_secret
        page = self.client.get(CHANGE.format(self.acme.pk)).content.decode()
        assert PASSWORD not in page and self.acme.share_secret not in page
        assert "A secret is stored (encrypted). Leave blank to keep it." in page

    def test_roots_with_dot_dot_or_on_two_servers_are_refused(self) -> None:
        self.client.force_login(self.alice)
        for roots in ("\\\\127.0.0.1\\attachments\\..\\other",
                      "\\\\127.0.0.1\\attachments\\a\n\\\\nas\\attachments\\b"):
            response = self.client.post(CHANGE.format(self.acme.pk),
                                        self._form(self.acme, attachment_roots=roots))
            assert response.status_code == 200, roots
            self.acme.refresh_from_db()
            assert not self.acme.on_share()

    def test_an_organization_administrator_cannot_set_the_share(self) -> None:
        self.client.force_login(self.bob)
        page = self.client.get(CHANGE.format(self.acme.pk)).content.decode()
        assert 'name="share_password"' not in page and 'name="share_username"' not in page
        self.client.post(CHANGE.format(self.acme.pk), self._form(self.acme))
        self.acme.refresh_from_db()
        assert not self.acme.on_share() and not self.acme.has_share_secret

    def test_the_action_tests_the_share_in_plain_words(self) -> None:
        self.client.force_login(self.alice)
        self.client.post(CHANGE.format(self.acme.pk), self._form(self.acme))
        list(get_messages(self.client.get(CHANGELIST).wsgi_request))   # "changed" read
        response = self.client.post(CHANGELIST, {
            "action": "test_attachment_share", "_selected_action": [self.acme.pk]}, follow=True)
        (message,) = self._messages(response)
        assert message.startswith("“Acme”: The share works: signed in to 127.0.0.1"), message
        self.client.post(CHANGE.format(self.acme.pk), self._form(
            self.acme, share_password="wrong"))
        list(get_messages(self.client.get(CHANGELIST).wsgi_request))
        response = self.client.post(CHANGELIST, {
            "action": "test_attachment_share", "_selected_action": [self.acme.pk]}, follow=True)
        (message,) = self._messages(response)
        assert "refused the share's user name or password" in message
