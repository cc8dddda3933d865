"""Attachments of an imported e-mail, end to end on both kinds of connection: each one of an
allowed type is saved, whatever names its neighbours have."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm.models import Document, Email
from engine.models import Run
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from tests.mailimport.conftest import (
    colleague,
    give_roots,
    import_mail,
    mail_profile,
    mime,
    settings_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

DRAFT = b"%PDF-1.4 smlouva, navrh"
SIGNED = b"%PDF-1.4 smlouva, podepsana"


def saving(profile: SyncProfile, share: Path) -> SyncProfile:
    give_roots(profile, share)
    settings_for(profile, save_attachments=True, attachment_directory=str(share))
    return profile


def test_two_attachments_with_the_same_name_are_both_saved(
        ewsim: SimHandle, connection_kind: str, share: Path) -> None:
    profile = saving(mail_profile(ewsim, connection_kind), share)
    ewsim.control.deliver(ewsim.user, mime=mime(
        "Smlouva", message_id="<smlouva@stavby.cz>",
        attachments=(("smlouva.pdf", DRAFT), ("smlouva.pdf", SIGNED), ("smlouva.pdf", DRAFT))))
    run = import_mail(profile)
    detail = run.items.get().detail
    assert run.status == Run.Status.SUCCESS, (run.message, detail)
    documents = {d.original_name: d for d in Document.objects.all()}
    assert sorted(documents) == ["smlouva (2).pdf", "smlouva (3).pdf", "smlouva.pdf"]
    content = {name: (Path(d.root) / d.path).read_bytes() for name, d in documents.items()}
    assert content == {"smlouva.pdf": DRAFT, "smlouva (2).pdf": SIGNED,
                       "smlouva (3).pdf": DRAFT}
    assert Path(documents["smlouva (2).pdf"].path).name == "smlouva (2).pdf"
    # The third is the first one's content: stored once, and the history says so.
    assert documents["smlouva (3).pdf"].path == documents["smlouva.pdf"].path
    assert "saved " + documents["smlouva (2).pdf"].path in detail
    assert (f"saved {documents['smlouva (3).pdf'].path} (smlouva (3).pdf has the same content: "
            "stored once)") in detail
    assert {d.email_id for d in documents.values()} == {Email.objects.get().pk}


def test_the_same_message_in_a_second_mailbox_saves_no_attachment_again(
        ewsim: SimHandle, connection_kind: str, share: Path) -> None:
    profile = saving(mail_profile(ewsim, connection_kind), share)
    ewsim.control.add_user("bob@example.com", "bob-pw")
    bob = saving(colleague(profile), share)
    raw = mime("Smlouva", to="alice@example.com, bob@example.com",
               message_id="<smlouva@stavby.cz>",
               attachments=(("smlouva.pdf", DRAFT), ("smlouva.pdf", SIGNED)))
    ewsim.control.deliver(ewsim.user, mime=raw)
    ewsim.control.deliver("bob@example.com", mime=raw)
    import_mail(profile)
    run = import_mail(bob)
    assert run.errors == 0, run.message
    assert Document.objects.count() == 2
