"""E-mail import end to end: raw MIME delivered into ewsim, filed in the CRM."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from django.test import override_settings

from crm.models import Company, Document, Email, Person, PersonCompany
from engine.models import Run
from ewsim.testing import SimHandle
from tests.engine.sync_helpers import make_profile, run_mail
from tests.mailimport.conftest import give_roots, mime, settings_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_mail_is_filed_once_and_linked_to_persons_and_companies(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    petr = Person.objects.create(organization_id=profile.organization_id, first_name="Petr",
                                 email1="Petr@Stavby.cz")
    company = Company.objects.create(organization_id=profile.organization_id, name="Stavby")
    PersonCompany.objects.create(person=petr, company=company)
    ewsim.control.deliver(ewsim.user, mime=mime("Nabídka", message_id="<a1@stavby.cz>"))
    ewsim.control.deliver(ewsim.user, mime=mime("Stará", days_ago=60))
    ewsim.control.deliver(ewsim.user, mime=mime("Nobody", sender="x@unknown.example"))
    run = run_mail(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    email = Email.objects.get(message_id="<a1@stavby.cz>")
    assert list(email.persons.all()) == [petr] and list(email.companies.all()) == [company]
    assert list(email.users.all()) == [profile.crm_user]
    assert sorted(Email.objects.values_list("subject", flat=True)) == ["Nabídka", "Nobody"]
    assert run_mail(ewsim, profile).items.count() == 0     # nothing new


def test_unmatched_mail_can_be_skipped(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    settings_for(profile, unmatched="skip")
    ewsim.control.deliver(ewsim.user, mime=mime("Nobody", sender="x@unknown.example"))
    run = run_mail(ewsim, profile)
    assert run.skipped == 1 and not Email.objects.exists()


def test_the_same_message_in_two_mailboxes_is_one_crm_email(ewsim: SimHandle) -> None:
    from django.contrib.auth.models import User

    from crm.models import CrmUser
    from profiles.models import SyncProfile

    profile = make_profile(ewsim)
    ewsim.control.add_user("bob@example.com", "bob-pw")
    bob = SyncProfile.objects.create(
        organization_id=profile.organization_id, mailbox="bob@example.com",
        user=User.objects.create_user("bob"), connection=profile.connection,
        crm_user=CrmUser.objects.create(organization_id=profile.organization_id, name="Bob",
                                        login="bob"))
    raw = mime("Meeting notes", to="alice@example.com, bob@example.com",
               message_id="<notes@northwind.co.uk>")
    ewsim.control.deliver(ewsim.user, mime=raw)
    ewsim.control.deliver("bob@example.com", mime=raw)
    run_mail(ewsim, profile)
    run_mail(ewsim, bob)
    email = Email.objects.get()
    assert {u.login for u in email.users.all()} == {"alice", "bob"}


def test_allowed_attachments_are_saved_inside_the_directory(ewsim: SimHandle,
                                                            tmp_path: Path) -> None:
    share = tmp_path / "share"
    (share / "crm").mkdir(parents=True)
    with override_settings(ATTACHMENT_ROOTS=[str(share)]):
        profile = make_profile(ewsim)
        give_roots(profile, share)
        settings_for(profile, save_attachments=True, attachment_directory=str(share / "crm"))
        hostile = (("../../etc/passwd.pdf", b"%PDF-1.4 a"), ("CON.txt", b"text"),
                   ("a/b\\c.pdf", b"%PDF-1.4 b"), ("x" * 300 + ".pdf", b"%PDF-1.4 c"),
                   ("‮fdp.exe", b"MZ"), ("setup.exe", b"MZ"), ("empty.txt", b""))
        ewsim.control.deliver(ewsim.user, mime=mime("Files", attachments=hostile))
        run = run_mail(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, (run.message, list(run.items.values_list(
        "detail", flat=True)))
    documents = list(Document.objects.all())
    assert len(documents) == 5     # the .exe files are not allowed
    written = [p for p in share.rglob("*") if p.is_file()]
    assert len(written) >= 4       # identical content is stored once
    for path in written:
        assert path.resolve().is_relative_to((share / "crm").resolve())
    for document in documents:
        assert (Path(document.root) / document.path).resolve().is_relative_to(share / "crm")
        assert document.category.name == "Příloha"


def test_a_dry_run_files_nothing_and_lists_what_it_would(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    ewsim.control.deliver(ewsim.user, mime=mime("Nabídka", message_id="<a2@stavby.cz>"))
    analysis = run_mail(ewsim, profile, dry_run=True)
    assert analysis.kind == Run.Kind.ANALYSIS and analysis.crm_created == 1
    assert not Email.objects.exists()
    assert run_mail(ewsim, profile).crm_created == 1


BROKEN = [
    b"This is not MIME at all \xff\xfe\x00 garbage\r\n",
    b"Subject: =?utf-8?B?////?= undecodable\r\nTo: alice@example.com\r\n\r\nno From header\r\n",
    b"From: \xc4\x8cern\xfd <cerny@x.cz>\r\nSubject: 8-bit \xe9\xe8 header\r\n\r\nbody \xff\r\n",
    b"From: a@x.cz\r\nSubject: zero\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
    b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=empty.pdf\r\n"
    b"\r\n\r\n--B--\r\n",
]


def nested(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for level in range(depth):
        boundary = f"L{level}".encode()
        body = (b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n--"
                + boundary + b"\r\n" + body + b"\r\n--" + boundary + b"--\r\n")
    return b"From: deep@x.cz\r\nSubject: nested\r\n" + body


def test_broken_mail_is_filed_or_recorded_and_the_run_goes_on(ewsim: SimHandle,
                                                              tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    with override_settings(ATTACHMENT_ROOTS=[str(share)]):
        profile = make_profile(ewsim)
        give_roots(profile, share)
        settings_for(profile, save_attachments=True, attachment_directory=str(share))
        for raw in [*BROKEN, nested(20)]:
            ewsim.control.deliver(ewsim.user, mime=raw)
        ewsim.control.deliver(ewsim.user, mime=mime("Fine", message_id="<ok@x.cz>"))
        run = run_mail(ewsim, profile)
    assert run.status in (Run.Status.SUCCESS, Run.Status.PARTIAL), run.message
    assert Email.objects.filter(message_id="<ok@x.cz>").exists()
    assert Email.objects.count() == 6
    for path in share.rglob("*"):
        assert path.resolve().is_relative_to(share.resolve())


def test_a_full_share_leaves_nothing_half_written_and_is_retried(ewsim: SimHandle,
                                                                 tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    with override_settings(ATTACHMENT_ROOTS=[str(share)]):
        profile = make_profile(ewsim)
        give_roots(profile, share)
        settings_for(profile, save_attachments=True, attachment_directory=str(share))
        ewsim.control.deliver(ewsim.user, mime=mime(
            "Files", message_id="<f@x.cz>", attachments=(("big.pdf", b"%PDF" * 1000),)))
        from mailimport import storage

        real = storage._write

        def full(*args: object, **kwargs: object) -> object:
            import errno
            raise OSError(errno.ENOSPC, "No space left on device")

        storage._write = full  # type: ignore[assignment]
        try:
            first = run_mail(ewsim, profile)
        finally:
            storage._write = real
        detail = first.items.get(action="error").detail
        assert first.errors == 1 and "share is full" in detail
        assert "Exchange" not in detail   # the share's fault, not the mailbox's
        assert not Document.objects.exists()
        assert not [p for p in share.rglob("*") if p.is_file() and p.suffix == ".pdf"]
        second = run_mail(ewsim, profile)
    assert second.errors == 0 and Document.objects.count() == 1
    assert Email.objects.count() == 1


def test_an_attached_email_is_saved_as_eml(ewsim: SimHandle, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    inner = mime("Original offer", message_id="<inner@x.cz>")
    outer = EmailMessage()
    outer["Subject"], outer["From"], outer["To"] = "Fwd", "petr@stavby.cz", "alice@example.com"
    outer.set_content("see attached")
    from email import message_from_bytes
    outer.add_attachment(message_from_bytes(inner))
    with override_settings(ATTACHMENT_ROOTS=[str(share)]):
        profile = make_profile(ewsim)
        give_roots(profile, share)
        settings_for(profile, save_attachments=True, attachment_directory=str(share),
                     attachment_types="pdf;eml")
        ewsim.control.deliver(ewsim.user, mime=outer.as_bytes())
        run = run_mail(ewsim, profile)
    assert run.errors == 0, list(run.items.values_list("detail", flat=True))
    (document,) = Document.objects.all()
    assert document.path.endswith(".eml")
    saved = (Path(document.root) / document.path).read_bytes()
    assert b"Original offer" in saved
