"""Every admin list, add and change page renders, for a superuser and an organization admin."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import User

from tests.base import BaseTestCase
from tests.crm_data import make_crm_records


class AdminPagesTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        for organization, user, mailbox in ((self.acme, self.dave, "dave@acme.example"),
                                            (self.globex, self.charlie, "charlie@globex.example")):
            profile = self.make_profile(organization, user, mailbox)
            make_crm_records(organization, profile=profile)

    def _check_every_page(self, user: User, expect_foreign_hidden: bool) -> int:
        self.client.force_login(user)
        request = self.client.get("/admin/").wsgi_request
        checked = 0
        for model, model_admin in admin.site._registry.items():
            if not model_admin.has_module_permission(request):
                continue
            meta = model._meta
            base = f"/admin/{meta.app_label}/{meta.model_name}/"
            with self.subTest(user=user.username, page=base):
                self.assertEqual(self.client.get(base).status_code, 200)
                if model_admin.has_add_permission(request):
                    self.assertEqual(self.client.get(base + "add/").status_code, 200)
                visible = model_admin.get_queryset(request)
                for obj in visible[:3]:
                    page = self.client.get(f"{base}{obj.pk}/change/")
                    self.assertEqual(page.status_code, 200)
                    checked += 1
                if expect_foreign_hidden and hasattr(model, "organization_path"):
                    hidden = model._default_manager.exclude(pk__in=visible.values("pk"))
                    for obj in hidden[:3]:
                        page = self.client.get(f"{base}{obj.pk}/change/")
                        self.assertEqual(page.status_code, 404)
                        checked += 1
        return checked

    def test_every_page_renders_for_a_superuser(self) -> None:
        self.assertGreater(self._check_every_page(self.alice, expect_foreign_hidden=False), 20)

    def test_every_page_renders_for_an_organization_admin_and_hides_the_others(self) -> None:
        self.assertGreater(self._check_every_page(self.bob, expect_foreign_hidden=True), 20)
