"""E-mail import straight onto a Windows share: e-mails with attachments from ewsim, saved on a
real Samba (tests/samba.py) with de-duplication, a failure recorded and retried next run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from crm.models import Document
from engine.models import Retry, Run
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from tests.engine.sync_helpers import make_profile, run_mail
from tests.mailimport.conftest import mime, settings_for
from tests.samba import PASSWORD, USER, Samba, samba  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

OFFER = b"%PDF-1.4 the offer, in every reply of the thread"
PLAN = b"%PDF-1.4 a floor plan"


def on_share(samba: Samba, profile: SyncProfile, folder: str,  # noqa: F811
             share: str = "attachments") -> str:
    organization = profile.organization
    organization.attachment_storage = "smb"
    organization.attachment_roots = samba.unc(share, folder)
    organization.share_username = USER
    organization.share_port = samba.port
    organization.set_share_secret(PASSWORD)
    organization.full_clean()
    organization.save()
    directory = samba.unc(share, folder, "crm")
    settings_for(profile, save_attachments=True, attachment_directory=directory)
    profile.mailsettings.full_clean()
    return directory


def test_an_organization_on_a_share_imports_attachments_onto_it_once_per_content(
        ewsim: SimHandle, samba: Samba) -> None:  # noqa: F811
    profile = make_profile(ewsim)
    on_share(samba, profile, "acme-import")
    for number in (1, 2):
        ewsim.control.deliver(profile.mailbox, mime=mime(
            f"Nabídka {number}", to=profile.mailbox, message_id=f"<offer-{number}@stavby.cz>",
            attachments=(("nabidka.pdf", OFFER), ("plan.pdf", PLAN) if number == 2 else
                         ("nabidka.pdf", OFFER))))
    run = run_mail(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    disk = samba.share_path() / "acme-import" / "crm"
    stored = sorted(p.relative_to(disk).as_posix() for p in disk.glob("20*/*/*/*"))
    offer, plan = (hashlib.sha256(c).hexdigest() for c in (OFFER, PLAN))
    assert sorted(name.split("/", 2)[2] for name in stored) == sorted(
        [f"{offer[:2]}/nabidka.pdf", f"{plan[:2]}/plan.pdf"])
    documents = Document.objects.filter(organization_id=profile.organization_id)
    assert documents.count() == 4   # one per attachment of each e-mail, two files on the share
    for document in documents:
        assert document.root == samba.unc("attachments", "acme-import")
        path = Path(samba.share_path(), "acme-import", *document.path.split("/"))
        assert path.read_bytes() in (OFFER, PLAN)
    assert list((disk / ".incoming").iterdir()) == []


def test_a_read_only_share_fails_the_message_in_the_history_and_it_is_retried(
        ewsim: SimHandle, samba: Samba) -> None:  # noqa: F811
    profile = make_profile(ewsim)
    on_share(samba, profile, "acme-ro", share="readonly")
    ewsim.control.deliver(profile.mailbox, mime=mime(
        "Plán", to=profile.mailbox, message_id="<plan@stavby.cz>",
        attachments=(("plan.pdf", PLAN),)))
    run = run_mail(ewsim, profile)
    details = "\n".join(run.items.values_list("detail", flat=True))
    assert "No permission to write to \\\\127.0.0.1\\readonly\\acme-ro\\crm" in details
    assert Retry.objects.filter(profile=profile).count() == 1
    assert not Document.objects.exists()

