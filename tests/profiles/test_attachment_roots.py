"""Each organization has its own share: attachment roots set by a superuser, inside the
server's ATTACHMENT_ROOTS and apart from every other organization's, and profiles' attachment
directories only below their own organization's roots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase, override_settings

from crm.models import CrmUser
from profiles.checks import check_organization_attachment_roots
from profiles.models import Organization, SyncProfile
from tests.base import BaseTestCase
from tests.profiles.admin_data import profile_form_data
from tests.profiles.test_profile_admin import _errors_of

ADD_PROFILE = "/admin/profiles/syncprofile/add/"


def _organization_form(organization: Organization, **fields: Any) -> dict[str, Any]:
    return {"name": organization.name, "alert_emails": organization.alert_emails,
            "attachment_roots": organization.attachment_roots,
            # A superuser's form also has where the roots are (a local folder here).
            "attachment_storage": organization.attachment_storage,
            "share_port": organization.share_port, **fields}


class OrganizationRootsTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.share = Path(settings.ATTACHMENT_ROOTS[0])

    def _root_errors(self, organization: Organization) -> list[str]:
        try:
            organization.full_clean()
        except ValidationError as exc:
            return exc.message_dict.get("attachment_roots", [])
        return []

    def test_roots_are_kept_one_per_line_without_blanks_or_repeats(self) -> None:
        self.acme.attachment_roots = f"  {self.share}/acme \n\n{self.share}/acme\n{self.share}/x\n"
        assert self._root_errors(self.acme) == []
        assert self.acme.attachment_roots == f"{self.share}/acme\n{self.share}/x"

    def test_a_root_outside_the_servers_roots_is_refused(self) -> None:
        for outside in ("/etc", f"{self.share}/acme/../../elsewhere", "relative/path"):
            with self.subTest(root=outside):
                self.acme.attachment_roots = outside
                assert len(self._root_errors(self.acme)) == 1

    def test_a_root_that_is_a_link_out_of_the_servers_roots_is_refused(self) -> None:
        outside = self.share.parent / f"{self.share.name}-outside"
        outside.mkdir()
        (self.share / "escape").symlink_to(outside)
        self.addCleanup(os.rmdir, outside)
        self.addCleanup(os.unlink, self.share / "escape")
        self.acme.attachment_roots = str(self.share / "escape")
        assert "ATTACHMENT_ROOTS" in self._root_errors(self.acme)[0]

    def test_a_root_overlapping_another_organizations_is_refused_naming_it(self) -> None:
        for overlapping in (f"{self.share}/globex", f"{self.share}/globex/sub", str(self.share),
                            f"{self.share}/acme/../globex/x"):
            with self.subTest(root=overlapping):
                self.acme.attachment_roots = overlapping
                (error,) = self._root_errors(self.acme)
                assert "an attachment root of Globex" in error

    def test_a_root_reaching_another_organizations_through_a_link_is_refused(self) -> None:
        (self.share / "globex").mkdir(exist_ok=True)
        (self.share / "shortcut").symlink_to(self.share / "globex")
        self.addCleanup(os.unlink, self.share / "shortcut")
        self.acme.attachment_roots = str(self.share / "shortcut")
        (error,) = self._root_errors(self.acme)
        assert "Globex" in error

    def test_an_organization_without_roots_is_told_to_ask_the_operator(self) -> None:
        self.acme.attachment_roots = ""
        self.acme.save()
        profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        mail = profile.mailsettings
        mail.save_attachments, mail.attachment_directory = True, str(self.share / "acme")
        with self.assertRaises(ValidationError) as raised:
            mail.full_clean()
        (message,) = raised.exception.message_dict["attachment_directory"]
        assert "ask the server's operator" in message

    def test_a_directory_in_another_organizations_root_is_refused(self) -> None:
        profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        mail = profile.mailsettings
        mail.save_attachments = True
        for directory in (f"{self.share}/globex/crm", f"{self.share}/acme/../globex/crm",
                          str(self.share)):
            with self.subTest(directory=directory):
                mail.attachment_directory = directory
                with self.assertRaises(ValidationError) as raised:
                    mail.full_clean()
                (message,) = raised.exception.message_dict["attachment_directory"]
                assert "not inside an approved attachment root" in message
                assert "globex" not in message.replace(directory, "")   # names only Acme's
        mail.attachment_directory = f"{self.share}/acme/crm"
        mail.full_clean()


class OrganizationRootsAdminTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.share = Path(settings.ATTACHMENT_ROOTS[0])
        self.globex_root = self.globex.attachment_roots

    def test_an_organization_admin_cannot_choose_a_directory_in_another_organizations_root(
            self) -> None:
        connection = self.make_connection(self.acme)
        crm_user = CrmUser.objects.create(organization=self.acme, name="Dave", login="dave")
        self.client.force_login(self.bob)
        response = self.client.post(ADD_PROFILE, profile_form_data(
            organization_id=None, user_id=self.dave.id, crm_user_id=crm_user.id,
            connection_id=connection.id, mailbox="dave@acme.example",
            mail={"save_attachments": True, "attachment_directory": f"{self.globex_root}/crm"}))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "is not inside an approved attachment root")
        self.assertFalse(SyncProfile.objects.filter(mailbox="dave@acme.example").exists())

    def test_an_organization_admin_cannot_move_a_profiles_directory_into_another_root(
            self) -> None:
        profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        self.client.force_login(self.bob)
        for directory in (f"{self.globex_root}/crm", f"{self.acme.attachment_roots}/../globex"):
            with self.subTest(directory=directory):
                response = self.client.post(
                    f"/admin/profiles/syncprofile/{profile.id}/change/", profile_form_data(
                        profile=profile, organization_id=None, user_id=self.dave.id,
                        crm_user_id=profile.crm_user_id, connection_id=profile.connection_id,
                        mailbox=profile.mailbox,
                        mail={"save_attachments": True, "attachment_directory": directory}))
                self.assertContains(response, "is not inside an approved attachment root")
                profile.mailsettings.refresh_from_db()
                self.assertEqual(profile.mailsettings.attachment_directory, "")

    def test_an_organization_admin_sees_the_roots_but_cannot_change_them(self) -> None:
        self.client.force_login(self.bob)
        url = f"/admin/profiles/organization/{self.acme.id}/change/"
        page = self.client.get(url)
        self.assertContains(page, self.acme.attachment_roots)
        self.assertNotIn("attachment_roots", page.context["adminform"].form.fields)
        response = self.client.post(url, _organization_form(
            self.acme, name="Acme Corp", attachment_roots=f"{self.globex_root}\n{self.share}"))
        self.assertEqual(response.status_code, 302, _errors_of(response))
        self.acme.refresh_from_db()
        self.assertEqual((self.acme.name, self.acme.attachment_roots),
                         ("Acme Corp", f"{self.share}/acme"))

    def test_a_superuser_sets_an_organizations_roots(self) -> None:
        self.client.force_login(self.alice)
        url = f"/admin/profiles/organization/{self.acme.id}/change/"
        roots = f"{self.share}/acme/mail\n{self.share}/acme-archive"
        response = self.client.post(url, _organization_form(self.acme, attachment_roots=roots))
        self.assertEqual(response.status_code, 302, _errors_of(response))
        self.acme.refresh_from_db()
        self.assertEqual(self.acme.attachment_roots, roots)

    def test_a_superuser_cannot_give_two_organizations_the_same_folder(self) -> None:
        self.client.force_login(self.alice)
        url = f"/admin/profiles/organization/{self.acme.id}/change/"
        response = self.client.post(url, _organization_form(
            self.acme, attachment_roots=f"{self.globex_root}/acme"))
        self.assertContains(response, "an attachment root of Globex")
        self.acme.refresh_from_db()
        self.assertEqual(self.acme.attachment_roots, f"{self.share}/acme")

    def test_a_servers_first_organization_is_offered_the_servers_roots(self) -> None:
        Organization.objects.all().delete()
        self.client.force_login(self.alice)
        page = self.client.get("/admin/profiles/organization/add/")
        self.assertEqual(page.context["adminform"].form.initial["attachment_roots"],
                         "\n".join(settings.ATTACHMENT_ROOTS))
        Organization.objects.create(name="First")
        page = self.client.get("/admin/profiles/organization/add/")
        self.assertNotIn("attachment_roots", page.context["adminform"].form.initial)


class OrganizationRootsCheckTestCase(BaseTestCase):
    def _warnings(self) -> list[str]:
        return [f"{m.id.removeprefix('profiles.')} {m.msg}"
                for m in check_organization_attachment_roots(databases=["default"])]

    def test_well_divided_roots_raise_no_warning(self) -> None:
        assert self._warnings() == []
        assert check_organization_attachment_roots() == []   # the database is not asked

    def test_roots_outside_the_servers_or_shared_by_two_organizations_are_reported(
            self) -> None:
        share = settings.ATTACHMENT_ROOTS[0]
        # Written as a database edit or an older server would have: validation never saw it.
        Organization.objects.filter(pk=self.acme.pk).update(attachment_roots="/etc")
        Organization.objects.filter(pk=self.globex.pk).update(
            attachment_roots=f"{share}/globex\n{share}/shared")
        Organization.objects.create(name="Initech", attachment_roots=f"{share}/shared/initech")
        warnings = self._warnings()
        assert any("W003 Organization 'Acme': /etc is not inside" in w for w in warnings)
        assert any("W003 Organization 'Initech'" in w and "Globex" in w for w in warnings)

    def test_an_organization_saving_attachments_without_roots_is_reported(self) -> None:
        profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        mail = profile.mailsettings
        mail.save_attachments, mail.attachment_directory = True, "/srv/share/acme"
        mail.save()
        Organization.objects.filter(pk=self.acme.pk).update(attachment_roots="")
        assert [w[:4] for w in self._warnings()] == ["W004"]


class SoleOrganizationMigrationTestCase(TransactionTestCase):
    """Existing installations: the migration that adds the roots."""

    before = [("profiles", "0003_connection_kind_label")]

    def _migrate_with(self, names: list[str]) -> dict[str, str]:
        executor = MigrationExecutor(connection)
        executor.migrate(self.before)
        old = executor.loader.project_state(self.before).apps.get_model("profiles",
                                                                         "Organization")
        for name in names:
            old.objects.create(name=name)
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())   # back to where the suite was
        return dict(Organization.objects.values_list("name", "attachment_roots"))

    @override_settings(ATTACHMENT_ROOTS=["/srv/share/crm", "/srv/archive"])
    def test_the_only_organization_gets_the_servers_roots(self) -> None:
        assert self._migrate_with(["Acme"]) == {"Acme": "/srv/share/crm\n/srv/archive"}

    @override_settings(ATTACHMENT_ROOTS=["/srv/share/crm"])
    def test_several_organizations_get_no_roots_until_a_superuser_sets_them(self) -> None:
        assert self._migrate_with(["Acme", "Globex"]) == {"Acme": "", "Globex": ""}

