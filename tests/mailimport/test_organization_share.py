"""Each organization has its own share, end to end: the worker saves an organization's
attachments only below that organization's roots, and the store's de-duplication by content
never hands one organization, or names in its history, a file another one saved."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from crm.models import CrmUser, Document
from engine.models import Run
from ewsim.testing import SimHandle
from profiles.models import MailboxConnection, Organization, SyncProfile
from tests.engine.sync_helpers import SERVICE, SERVICE_PASSWORD, make_profile, run_mail
from tests.mailimport.conftest import give_roots, mime, settings_for

pytestmark = pytest.mark.django_db(transaction=True)

OFFER = b"%PDF-1.4 the same offer, sent to both companies"


def globex_profile(sim: SimHandle) -> SyncProfile:
    """A second organization, Globex, with a mailbox of its own on the same Exchange."""
    mailbox = "gina@globex.example"
    sim.control.add_user(mailbox, "gina-pw")
    globex = Organization.objects.create(name="Globex")
    connection = MailboxConnection(organization=globex, name="ewsim", ews_url=sim.url,
                                   auth_type="basic", username=SERVICE)
    connection.set_secret(SERVICE_PASSWORD)
    connection.save()
    return SyncProfile.objects.create(
        organization=globex, mailbox=mailbox, connection=connection,
        user=User.objects.create_user("gina"),
        crm_user=CrmUser.objects.create(organization=globex, name="Gina", login="gina"))


def deliver_offer(sim: SimHandle, profile: SyncProfile) -> None:
    sim.control.deliver(profile.mailbox, mime=mime(
        "Nabídka", to=profile.mailbox, message_id="<offer@stavby.cz>",
        attachments=(("nabidka.pdf", OFFER),)))


def saved_file(profile: SyncProfile) -> Path:
    (document,) = Document.objects.filter(organization_id=profile.organization_id)
    return Path(document.root) / document.path


def history(run: Run) -> str:
    return "\n".join(run.items.values_list("detail", flat=True))


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_the_worker_refuses_a_directory_outside_the_organizations_roots_from_the_database(
        ewsim: SimHandle, share: Path) -> None:
    acme = make_profile(ewsim)
    give_roots(acme, share / "acme")
    give_roots(globex_profile(ewsim), share / "globex")
    (share / "acme").mkdir()
    (share / "acme" / "shortcut").symlink_to(share / "globex")
    deliver_offer(ewsim, acme)
    for directory in (share / "globex" / "crm", share / "acme" / ".." / "globex",
                      share / "acme" / "shortcut" / "crm", share):
        # Written past the admin's validation, as a database edit or an older version would.
        settings_for(acme, save_attachments=True, attachment_directory=str(directory))
        run = run_mail(ewsim, acme)
        assert run.status == Run.Status.FAILED, (directory, run.status)
        assert "not inside an approved attachment root" in run.message
        assert files_under(share / "globex") == []
    assert not Document.objects.exists()


def test_an_organization_without_roots_saves_nothing_and_is_told_whom_to_ask(
        ewsim: SimHandle, share: Path) -> None:
    acme = make_profile(ewsim)
    give_roots(globex_profile(ewsim), share / "globex")
    settings_for(acme, save_attachments=True, attachment_directory=str(share / "acme"))
    deliver_offer(ewsim, acme)
    run = run_mail(ewsim, acme)
    assert run.status == Run.Status.FAILED
    assert "ask the server's operator to set its attachment roots" in run.message
    assert files_under(share) == []   # the server's roots are no fallback


def test_two_organizations_importing_the_same_attachment_each_get_their_own_file(
        ewsim: SimHandle, share: Path) -> None:
    acme, globex = make_profile(ewsim), globex_profile(ewsim)
    for profile, name in ((acme, "acme"), (globex, "globex")):
        give_roots(profile, share / name)
        settings_for(profile, save_attachments=True,
                     attachment_directory=str(share / name / "crm"))
        deliver_offer(ewsim, profile)
    runs = {"acme": run_mail(ewsim, acme), "globex": run_mail(ewsim, globex)}
    files = {"acme": saved_file(acme), "globex": saved_file(globex)}
    for name, run in runs.items():
        assert run.status == Run.Status.SUCCESS, (run.message, history(run))
        assert files[name].resolve().is_relative_to((share / name).resolve())
        assert files[name].read_bytes() == OFFER
        below = files[name].resolve().relative_to((share / name / "crm").resolve())
        assert f"saved {below.as_posix()}" in history(run)
    assert not os.path.samefile(files["acme"], files["globex"])


def test_a_folder_given_over_to_another_organization_never_hands_it_the_files_saved_there(
        ewsim: SimHandle, share: Path) -> None:
    acme, globex = make_profile(ewsim), globex_profile(ewsim)
    give_roots(globex, share / "shared")
    settings_for(globex, save_attachments=True, attachment_directory=str(share / "shared"))
    deliver_offer(ewsim, globex)
    assert run_mail(ewsim, globex).status == Run.Status.SUCCESS
    globex_file = saved_file(globex)
    # The superuser gives Globex another folder and the old one, with Globex's files, to Acme.
    give_roots(globex, share / "globex")
    give_roots(acme, share / "shared")
    settings_for(acme, save_attachments=True, attachment_directory=str(share / "shared"))
    deliver_offer(ewsim, acme)
    run = run_mail(ewsim, acme)
    assert run.status == Run.Status.SUCCESS, (run.message, history(run))
    acme_file = saved_file(acme)
    assert acme_file.read_bytes() == OFFER
    assert not os.path.samefile(acme_file, globex_file)
    globex_below = globex_file.resolve().relative_to(share.resolve() / "shared").as_posix()
    assert f"saved {globex_below}\n" not in history(run) + "\n"
    assert globex_file.read_bytes() == OFFER   # left as it was
