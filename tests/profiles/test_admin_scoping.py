from __future__ import annotations

from django.contrib.auth.models import User

from crm.models import CrmUser
from profiles.models import Membership
from tests.base import BaseTestCase
from tests.profiles.admin_data import profile_form_data
from tests.profiles.test_profile_admin import _errors_of


class OrganizationAdminScopeTestCase(BaseTestCase):
    """bob administers Acme; everything of Globex must be invisible to him."""

    def setUp(self) -> None:
        super().setUp()
        self.acme_connection = self.make_connection(self.acme, name="Acme Exchange")
        self.globex_connection = self.make_connection(self.globex, name="Globex Exchange")
        self.acme_profile = self.make_profile(self.acme, self.dave, "dave@acme.example",
                                              connection=self.acme_connection)
        self.globex_user = self._member("gina", self.globex, Membership.Role.USER)
        self.globex_profile = self.make_profile(self.globex, self.globex_user,
                                                "gina@globex.example",
                                                connection=self.globex_connection)
        self.client.force_login(self.bob)

    def test_lists_show_only_the_own_organization(self) -> None:
        pages = {
            "/admin/profiles/mailboxconnection/": ("Acme Exchange", "Globex Exchange"),
            "/admin/profiles/syncprofile/": ("dave@acme.example", "gina@globex.example"),
            "/admin/auth/user/": (">dave<", ">gina<"),
            "/admin/profiles/organization/": (">Acme<", ">Globex<"),
        }
        for url, (own, foreign) in pages.items():
            with self.subTest(url=url):
                page = self.client.get(url)
                self.assertEqual(page.status_code, 200)
                self.assertContains(page, own)
                self.assertNotContains(page, foreign)

    def test_another_organizations_objects_are_not_found(self) -> None:
        objects = {
            "profiles/mailboxconnection": self.globex_connection.id,
            "profiles/syncprofile": self.globex_profile.id,
            "auth/user": self.globex_user.id,
            "profiles/organization": self.globex.id,
        }
        for path, object_id in objects.items():
            for view in ("change", "delete", "history"):
                url = f"/admin/{path}/{object_id}/{view}/"
                with self.subTest(url=url):
                    # 403 where bob may do this to no object of the kind at all
                    # (deleting organizations), else 404: it is not found.
                    expected = 403 if path == "profiles/organization" and view == "delete" else 404
                    self.assertEqual(self.client.get(url).status_code, expected)
        response = self.client.post(f"/admin/auth/user/{self.globex_user.id}/password/",
                                    {"password1": "x" * 20, "password2": "x" * 20})
        self.assertEqual(response.status_code, 404)

    def test_another_organizations_objects_cannot_be_edited_or_deleted(self) -> None:
        url = f"/admin/profiles/mailboxconnection/{self.globex_connection.id}/change/"
        response = self.client.post(url, {"name": "taken over", "kind": "ews"})
        self.assertEqual(response.status_code, 404)
        response = self.client.post(
            f"/admin/profiles/syncprofile/{self.globex_profile.id}/delete/", {"post": "yes"})
        self.assertEqual(response.status_code, 404)
        self.globex_connection.refresh_from_db()
        self.assertEqual(self.globex_connection.name, "Globex Exchange")
        self.assertTrue(type(self.globex_profile).objects.filter(pk=self.globex_profile.pk)
                        .exists())

    def test_choice_fields_offer_only_the_own_organization(self) -> None:
        page = self.client.get("/admin/profiles/syncprofile/add/")
        self.assertContains(page, "Acme Exchange")
        self.assertNotContains(page, "Globex Exchange")
        self.assertNotContains(page, "gina@globex.example")
        form = page.context["adminform"].form
        self.assertNotIn("organization", form.fields)
        self.assertEqual(set(form.fields["user"].queryset), {self.bob, self.dave})

    def test_a_foreign_connection_posted_by_id_is_refused(self) -> None:
        crm_user = CrmUser.objects.create(organization=self.acme, name="Eve", login="eve")
        data = profile_form_data(organization_id=None, user_id=self.dave.id,
                                 crm_user_id=crm_user.id,
                                 connection_id=self.globex_connection.id,
                                 mailbox="eve@acme.example")
        response = self.client.post("/admin/profiles/syncprofile/add/", data)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Select a valid choice")

    def test_a_user_added_by_an_organization_admin_joins_that_organization(self) -> None:
        response = self.client.post("/admin/auth/user/add/", {
            "username": "erin", "password1": "a-long-password-123", "password2":
            "a-long-password-123", "usable_password": "true",
            "membership-TOTAL_FORMS": 0, "membership-INITIAL_FORMS": 0,
            "membership-MIN_NUM_FORMS": 0, "membership-MAX_NUM_FORMS": 1,
        })
        self.assertEqual(response.status_code, 302)
        erin = User.objects.get(username="erin")
        self.assertEqual(erin.membership.organization, self.acme)
        self.assertFalse(erin.is_staff or erin.is_superuser)

    def test_an_organization_admin_cannot_grant_superuser_rights(self) -> None:
        url = f"/admin/auth/user/{self.dave.id}/change/"
        page = self.client.get(url)
        self.assertNotIn("is_superuser", page.context["adminform"].form.fields)
        response = self.client.post(url, {
            "username": "dave", "first_name": "", "last_name": "", "email": "",
            "is_active": "on", "is_superuser": "on", "is_staff": "on",
            "membership-TOTAL_FORMS": 1, "membership-INITIAL_FORMS": 1,
            "membership-MIN_NUM_FORMS": 0, "membership-MAX_NUM_FORMS": 1,
            "membership-0-id": self.dave.membership.id, "membership-0-user": self.dave.id,
            "membership-0-role": "user",
        })
        self.assertEqual(response.status_code, 302, _errors_of(response))
        self.dave.refresh_from_db()
        self.assertFalse(self.dave.is_superuser)
        self.assertFalse(self.dave.is_staff)

    def test_superusers_are_out_of_an_organization_admins_reach(self) -> None:
        Membership.objects.create(user=self.alice, organization=self.acme)
        self.assertEqual(self.client.get(f"/admin/auth/user/{self.alice.id}/change/")
                         .status_code, 404)

    def test_making_a_member_an_organization_admin_lets_them_into_the_admin(self) -> None:
        membership = self.dave.membership
        membership.role = Membership.Role.ADMIN
        membership.save()
        self.dave.refresh_from_db()
        self.assertTrue(self.dave.is_staff)

    def test_a_plain_user_cannot_open_the_admin(self) -> None:
        self.client.force_login(self.dave)
        response = self.client.get("/admin/profiles/syncprofile/")
        self.assertEqual(response.status_code, 302)
        self.assertIn("/admin/login/", response["Location"])

    def test_the_superuser_sees_every_organization(self) -> None:
        self.client.force_login(self.alice)
        page = self.client.get("/admin/profiles/syncprofile/")
        self.assertContains(page, "dave@acme.example")
        self.assertContains(page, "gina@globex.example")
