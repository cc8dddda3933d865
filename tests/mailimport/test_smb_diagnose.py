"""Testing an organization's attachment share, against a real Samba (tests/samba.py): each
failure in plain words."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailimport.smb_diagnose import check_share
from profiles.models import Organization
from tests.samba import PASSWORD, USER, Samba, running_samba, samba  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def organization(samba: Samba, root: str, *, password: str = PASSWORD,  # noqa: F811
                 port: int | None = None, encryption: bool = True) -> Organization:
    org = Organization(name="Acme", attachment_storage="smb", attachment_roots=root,
                       share_username=USER, share_port=port or samba.port,
                       share_requires_encryption=encryption)
    org.set_share_secret(password)
    org.full_clean()
    org.save()
    return org


def test_a_working_share_is_written_to_and_left_clean(samba: Samba) -> None:  # noqa: F811
    report = check_share(organization(samba, samba.unc("attachments", "diagnose")))
    assert report.ok, report.message
    assert "encrypted (SMB 3)" in report.message
    assert list((samba.share_path() / "diagnose").iterdir()) == []


def test_a_server_name_that_does_not_resolve(samba: Samba) -> None:  # noqa: F811
    report = check_share(organization(samba, "\\\\nas.invalid\\attachments\\x"))
    assert (report.reason, report.ok) == ("dns", False)
    assert "nas.invalid cannot be resolved" in report.message


def test_nothing_listening_on_the_port(samba: Samba) -> None:  # noqa: F811
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    report = check_share(organization(samba, samba.unc("attachments", "x"), port=port))
    assert report.reason == "refused", report.message
    assert "refused the connection" in report.message


def test_a_wrong_password(samba: Samba) -> None:  # noqa: F811
    report = check_share(organization(samba, samba.unc("attachments", "x"), password="nope"))
    assert report.reason == "credentials", report.message
    assert "refused the share's user name or password" in report.message


def test_a_share_that_does_not_exist(samba: Samba) -> None:  # noqa: F811
    report = check_share(organization(samba, samba.unc("documents", "x")))
    assert report.reason == "no_share", report.message
    assert "no share named" in report.message


def test_no_write_permission(samba: Samba) -> None:  # noqa: F811
    report = check_share(organization(samba, samba.unc("readonly")))
    assert report.reason == "no_write", report.message
    assert "No permission to write" in report.message


@pytest.fixture(scope="module")
def unencrypted_samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Samba]:
    with running_samba(Path(tmp_path_factory.mktemp("plain-samba")), encrypt="off",
                       with_full=False) as server:
        yield server


def test_encryption_required_but_not_offered(unencrypted_samba: Samba) -> None:
    root = unencrypted_samba.unc("attachments", "x")
    report = check_share(organization(unencrypted_samba, root))
    assert report.reason == "no_encryption", report.message
    assert "does not offer SMB 3 encryption" in report.message
    Organization.objects.all().delete()
    # Not required, the same server is used without it, and the report says so.
    report = check_share(organization(unencrypted_samba, root, encryption=False))
    assert report.ok, report.message
    assert "not encrypted" in report.message


def test_a_dfs_namespace(samba: Samba) -> None:  # noqa: F811
    report = check_share(organization(samba, samba.unc("dfs", "elsewhere")))
    assert report.reason == "dfs", report.message
    assert "is a DFS namespace" in report.message and "link's target share" in report.message
