"""The attachment directory's "…" picker: browsing the organization's approved roots and
creating a folder below them, only there, only by POST with the CSRF token, only for the
profile's own organization."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from django.test import Client

from console.attachment_picker import folder_name_problem
from profiles.models import SyncProfile
from tests.base import BaseTestCase


def list_url(profile: SyncProfile) -> str:
    return f"/admin/profiles/syncprofile/{profile.pk}/attachment-folders/"


def create_url(profile: SyncProfile) -> str:
    return f"/admin/profiles/syncprofile/{profile.pk}/attachment-folders/create/"


class AttachmentPickerTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.acme_root = Path(self.acme.attachment_roots)
        self.globex_root = Path(self.globex.attachment_roots)
        for root in (self.acme_root, self.globex_root):
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            self.addCleanup(shutil.rmtree, root, True)
        (self.acme_root / "Faktury").mkdir()
        (self.acme_root / "archiv").mkdir()
        (self.acme_root / ".sha256").mkdir()          # the store's bookkeeping
        (self.acme_root / "readme.txt").write_text("not a folder")
        (self.globex_root / "Tajné").mkdir()
        # A symbolic link inside Acme's root leading into Globex's.
        os.symlink(self.globex_root, self.acme_root / "globex-link")
        self.profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        self.foreign = self.make_profile(self.globex, self.charlie, "charlie@globex.example")
        self.client.force_login(self.bob)

    def _list(self, path: str = "", profile: SyncProfile | None = None) -> dict:
        response = self.client.post(list_url(profile or self.profile), {"path": path})
        return {"status": response.status_code, **response.json()}

    def _create(self, parent: str, name: str) -> dict:
        response = self.client.post(create_url(self.profile), {"parent": parent, "name": name})
        return {"status": response.status_code, **response.json()}

    def test_it_lists_the_organizations_roots_and_then_their_real_subfolders(self) -> None:
        roots = self._list()
        self.assertEqual(roots["status"], 200)
        self.assertEqual(roots["folders"], [{"name": str(self.acme_root),
                                             "path": str(self.acme_root)}])
        self.assertIsNone(roots["parent"])
        inside = self._list(str(self.acme_root))
        # No files, no dot folders, no symbolic links (this one leads to Globex's files).
        self.assertEqual([f["name"] for f in inside["folders"]], ["archiv", "Faktury"])
        self.assertEqual(inside["parent"], "")
        deeper = self._list(str(self.acme_root / "Faktury"))
        self.assertEqual((deeper["path"], deeper["parent"], deeper["folders"]),
                         (str(self.acme_root / "Faktury"), str(self.acme_root), []))

    def test_another_organizations_root_is_never_listed_however_it_is_named(self) -> None:
        for path in (str(self.globex_root), str(self.acme_root / ".." / "globex"),
                     str(self.acme_root / "globex-link"), "/etc", "relative/path",
                     str(self.acme_root / "missing")):
            with self.subTest(path=path):
                answer = self._list(path)
                self.assertEqual(answer["status"], 400)
                self.assertNotIn("folders", answer)
        self.assertIn("not inside an approved attachment root",
                      self._list(str(self.globex_root))["error"])
        self.assertIn("does not exist", self._list(str(self.acme_root / "missing"))["error"])

    def test_another_organizations_administrator_gets_a_404_for_the_profile(self) -> None:
        self.client.force_login(self.charlie)
        self.assertEqual(self.client.post(list_url(self.profile)).status_code, 404)
        response = self.client.post(create_url(self.profile),
                                    {"parent": str(self.acme_root), "name": "x"})
        self.assertEqual(response.status_code, 404)
        self.assertFalse((self.acme_root / "x").exists())
        # Through their own profile they see their own root, never Acme's.
        answer = self._list(profile=self.foreign)
        self.assertEqual([f["path"] for f in answer["folders"]], [str(self.globex_root)])

    def test_a_plain_user_and_an_outsider_get_nothing(self) -> None:
        for user in (self.dave, None):
            client = Client()
            if user is not None:
                client.force_login(user)
            response = client.post(list_url(self.profile), {"path": str(self.acme_root)})
            self.assertIn(response.status_code, (302, 403))
            self.assertNotIn(b"Faktury", response.content)

    def test_only_posts_with_the_csrf_token_are_answered(self) -> None:
        self.assertEqual(self.client.get(list_url(self.profile)).status_code, 405)
        self.assertEqual(self.client.get(create_url(self.profile)).status_code, 405)
        strict = Client(enforce_csrf_checks=True)
        strict.force_login(self.bob)
        self.assertEqual(strict.post(list_url(self.profile)).status_code, 403)
        response = strict.post(create_url(self.profile),
                               {"parent": str(self.acme_root), "name": "Nová"})
        self.assertEqual(response.status_code, 403)
        self.assertFalse((self.acme_root / "Nová").exists())

    def test_a_new_folder_is_created_inside_the_folder_shown(self) -> None:
        answer = self._create(str(self.acme_root / "Faktury"), "Přílohy 2026")
        self.assertEqual(answer, {"status": 201,
                                  "path": str(self.acme_root / "Faktury" / "Přílohy 2026")})
        self.assertTrue((self.acme_root / "Faktury" / "Přílohy 2026").is_dir())
        again = self._create(str(self.acme_root / "Faktury"), "Přílohy 2026")
        self.assertEqual(again["status"], 400)
        self.assertIn("exists already", again["error"])

    def test_hostile_names_are_refused_and_nothing_is_created(self) -> None:
        before = sorted(p.name for p in self.acme_root.iterdir())
        for name in ("", "   ", "..", ".", "../escape", "a/b", "a\\b", ".hidden", "CON",
                     "lpt1.txt", "tab\there", "nul\x00byte", "right\u202eleft", "ends.",
                     "x" * 200):
            with self.subTest(name=name):
                answer = self._create(str(self.acme_root), name)
                self.assertEqual(answer["status"], 400)
                self.assertTrue(answer["error"])
        self.assertEqual(sorted(p.name for p in self.acme_root.iterdir()), before)
        self.assertFalse((self.acme_root.parent / "escape").exists())

    def test_no_folder_is_created_outside_the_roots_or_through_a_symbolic_link(self) -> None:
        for parent in ("", str(self.globex_root), str(self.acme_root / "globex-link"),
                       str(self.acme_root / ".." / "globex"), str(self.acme_root.parent)):
            with self.subTest(parent=parent):
                self.assertEqual(self._create(parent, "Planted")["status"], 400)
        self.assertEqual([p.name for p in self.globex_root.iterdir()], ["Tajné"])
        self.assertFalse((self.acme_root.parent / "Planted").exists())

    def test_the_change_page_names_the_allowed_roots_and_offers_the_picker(self) -> None:
        page = self.client.get(f"/admin/profiles/syncprofile/{self.profile.pk}/change/")
        html = page.content.decode()
        self.assertTrue(f"Allowed: inside {self.acme_root}." in html)
        self.assertFalse(str(self.globex_root) in html)
        self.assertTrue(f'data-attachment-list-url="{list_url(self.profile)}"' in html)
        self.assertTrue("profiles/attachment_picker.js" in html)

    def test_an_organization_without_roots_is_told_to_ask_the_operator(self) -> None:
        self.acme.attachment_roots = ""
        self.acme.save()
        self.assertIn("ask the server's operator", self._list()["error"])
        page = self.client.get(f"/admin/profiles/syncprofile/{self.profile.pk}/change/")
        self.assertTrue("ask the server&#x27;s operator" in page.content.decode())


class FolderNameTestCase(BaseTestCase):
    def test_plain_names_in_any_script_are_fine(self) -> None:
        for name in ("Faktury", "Přílohy 2026", "見積書", "a.b", "x" * 150):
            self.assertIsNone(folder_name_problem(name), name)

    def test_a_name_the_share_would_change_is_refused_with_a_usable_one(self) -> None:
        self.assertIn("“_CON” could be", folder_name_problem("CON") or "")
        self.assertIn("“a_b” could be", folder_name_problem("a/b") or "")
        self.assertEqual(folder_name_problem(".."),
                         "“..” cannot be a folder name on the share.")
