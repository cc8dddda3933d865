"""The admin index in the order an administrator works through it."""

from __future__ import annotations

import re

from tests.base import BaseTestCase


class AdminIndexOrderTestCase(BaseTestCase):
    def _app_labels(self) -> list[str]:
        page = self.client.get("/admin/").content.decode()
        return re.findall(r'<div class="app-([a-z_]+) module', page)

    def test_the_sync_configuration_comes_first_and_the_background_tasks_last(self) -> None:
        self.client.force_login(self.alice)
        labels = self._app_labels()
        self.assertEqual(labels[:3], ["profiles", "engine", "crm"])
        self.assertEqual(labels[-1], "django_q")

    def test_an_organization_administrator_sees_the_configuration_first_too(self) -> None:
        self.client.force_login(self.bob)
        labels = self._app_labels()
        self.assertEqual(labels[0], "profiles")
        self.assertLess(labels.index("engine"), labels.index("crm"))
