"""The attachment directory's "…" picker on a Windows share, against a real Samba
(tests/samba.py): browsing the organization's roots on the share and creating a folder there,
never outside them."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from profiles.models import SyncProfile
from tests.base import BaseTestCase
from tests.profiles.test_attachment_picker import create_url, list_url
from tests.samba import PASSWORD, USER, Samba, samba  # noqa: F401 (fixture)


class ShareAttachmentPickerTestCase(BaseTestCase):
    @pytest.fixture(autouse=True)
    def _samba(self, samba: Samba) -> None:  # noqa: F811
        self.samba = samba

    def setUp(self) -> None:
        super().setUp()
        disk = self.samba.share_path() / "picker-acme"
        shutil.rmtree(disk, ignore_errors=True)
        for folder in ("Faktury", "archiv", ".sha256"):
            (disk / folder).mkdir(parents=True)
        (disk / "readme.txt").write_text("not a folder")
        self.addCleanup(shutil.rmtree, disk, True)
        self.root = self.samba.unc("attachments", "picker-acme")
        self.acme.attachment_storage = "smb"
        self.acme.attachment_roots = self.root
        self.acme.share_username = USER
        self.acme.share_port = self.samba.port
        self.acme.set_share_secret(PASSWORD)
        self.acme.full_clean()
        self.acme.save()
        self.profile: SyncProfile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        self.client.force_login(self.bob)

    def _list(self, path: str = "") -> dict[str, Any]:
        response = self.client.post(list_url(self.profile), {"path": path})
        return {"status": response.status_code, **response.json()}

    def test_it_browses_the_roots_on_the_share_and_their_subfolders(self) -> None:
        roots = self._list()
        assert roots["folders"] == [{"name": self.root, "path": self.root}]
        inside = self._list(self.root)
        assert inside["status"] == 200, inside
        # No files, no dot folders (the store's bookkeeping).
        assert [f["name"] for f in inside["folders"]] == ["archiv", "Faktury"]
        assert inside["parent"] == ""
        deeper = self._list(f"{self.root}\\Faktury")
        assert (deeper["path"], deeper["parent"], deeper["folders"]) == (
            f"{self.root}\\Faktury", self.root, [])

    def test_a_path_outside_the_roots_is_never_listed(self) -> None:
        for path in (f"{self.root}\\..", self.samba.unc("attachments"),
                     self.samba.unc("readonly"), "\\\\otherhost\\attachments\\picker-acme",
                     "/etc"):
            answer = self._list(path)
            assert answer["status"] == 400, path
            assert "folders" not in answer

    def test_it_creates_a_folder_on_the_share(self) -> None:
        response = self.client.post(create_url(self.profile),
                                    {"parent": self.root, "name": "Smlouvy 2026"})
        assert response.status_code == 201, response.json()
        assert response.json()["path"] == f"{self.root}\\Smlouvy 2026"
        assert (self.samba.share_path() / "picker-acme" / "Smlouvy 2026").is_dir()
        again = self.client.post(create_url(self.profile),
                                 {"parent": self.root, "name": "Smlouvy 2026"})
        assert again.status_code == 400 and "exists already" in again.json()["error"]
        bad = self.client.post(create_url(self.profile), {"parent": self.root, "name": "..\\x"})
        assert bad.status_code == 400
