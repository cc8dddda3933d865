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

    def test_the_change_page_has_a_test_button_that_posts_and_reports(self) -> None:
        """The button is shown only for an organization on a share; it answers a POST only,
        and another organization's administrator gets a 404, as for a missing one."""
        test_url = f"/admin/profiles/organization/{self.acme.pk}/test-share/"
        self.client.force_login(self.alice)
        page = self.client.get(CHANGE.format(self.acme.pk)).content.decode()
        assert test_url not in page   # attachments in a local folder: nothing to test
        self.client.post(CHANGE.format(self.acme.pk), self._form(self.acme))
        page = self.client.get(CHANGE.format(self.acme.pk)).content.decode()
        assert f'action="{test_url}"' in page and "Test the attachment share" in page
        assert self.client.get(test_url).status_code == 405
        response = self.client.post(test_url, follow=True)
        assert response.redirect_chain[-1][0] == CHANGE.format(self.acme.pk)
        messages = [m for m in self._messages(response) if m.startswith("“Acme”:")]
        assert messages and "The share works: signed in to 127.0.0.1" in messages[-1], messages
        self.client.force_login(self.bob)   # Acme's administrator may test it too
        assert self.client.post(test_url).status_code == 302
        self.client.force_login(self.charlie)   # Globex's administrator
        assert self.client.post(test_url).status_code == 404
        self.client.force_login(self.dave)   # a user of Acme, not its administrator
        response = self.client.post(test_url)
        assert response.status_code == 302 and "/login/" in response["Location"]
