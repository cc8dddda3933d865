"""Fault campaign: the share filling up during an e-mail import.

The attachment share is a real file system that really fills up: a small tmpfs mounted for the
test (skipped, saying so, where mounting is not allowed), most of it taken by a file standing
for everything else on the share. E-mails with attachments of random sizes — more than the
space left — are imported by one job, as a worker runs it. Then:

- the run says what happened: it is partial, each e-mail whose attachments did not fit is an
  error line saying the share is full, and is kept for a retry;
- nothing is half-written: no temporary file is left, every file on the share is exactly one
  attachment's bytes, and every CRM document names such a file;
- every e-mail is filed once in the CRM, whether its attachments fitted or not;
- once space is freed, the next run saves what was missing, and only that: every attachment
  once, as a document of its e-mail, no e-mail twice, nothing left to retry.

Default size: RELIABILITY_MAILS=8 e-mails (1–3 attachments of 20–150 kB each).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from django.test import override_settings

from crm.models import Document, Email
from engine import jobs
from engine.models import Retry, Run, RunItem
from ewsim.testing import SimHandle
from mailimport.storage import INCOMING
from tests.engine.sync_helpers import make_profile

from .campaign import count, seeded_random

pytestmark = pytest.mark.django_db(transaction=True)

MAILS = count("RELIABILITY_MAILS", 8)
# Room for every attachment (at most 3 × 150 kB an e-mail) and the store's folders, once freed.
SHARE_BYTES = 2 * 1024 * 1024 + MAILS * 600 * 1024


@contextlib.contextmanager
def small_file_system(mount_point: Path, size: int) -> Iterator[Path]:
    """A tmpfs of `size` bytes at `mount_point`, unmounted afterwards."""
    mount_point.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount command: a full share needs a file system of its own")
    result = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                             str(mount_point)], capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"mounting a small tmpfs is not allowed here ({result.stderr.strip()}); "
                    "tests/mailimport simulate a full share without privileges")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def message(rng: random.Random, number: int) -> tuple[bytes, dict[str, bytes]]:
    """An e-mail with 1–3 attachments of random content; the MIME and the attachments."""
    mail = EmailMessage()
    mail["Subject"] = f"Podklady {number}"
    mail["From"] = "Petr Svoboda <petr@stavby.example>"
    mail["To"] = "alice@example.com"
    mail["Message-ID"] = f"<share-{number}@reliability.example>"
    received = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1 + number)
    mail["Date"] = received.strftime("%a, %d %b %Y %H:%M:%S +0000")
    mail.set_content("Dobrý den,\nposílám podklady.\n")
    attachments = {f"podklad-{number}-{i}.pdf": rng.randbytes(rng.randint(20, 150) * 1024)
                   for i in range(rng.randint(1, 3))}
    for name, content in attachments.items():
        mail.add_attachment(content, maintype="application", subtype="pdf", filename=name)
    return mail.as_bytes(), attachments


def stored_files(store: Path) -> dict[str, bytes]:
    """Every attachment file on the share (not the store's dot-folders), by relative path."""
    return {path.relative_to(store).as_posix(): path.read_bytes()
            for path in store.rglob("*") if path.is_file()
            and not path.relative_to(store).parts[0].startswith(".")}


def assert_nothing_half_written(store: Path, attachments: dict[str, bytes]) -> None:
    incoming = store / INCOMING
    assert not (list(incoming.iterdir()) if incoming.exists() else []), \
        "temporary files left on the share"
    contents = {hashlib.sha256(c).hexdigest() for c in attachments.values()}
    for relative, content in stored_files(store).items():
        assert hashlib.sha256(content).hexdigest() in contents, \
            f"{relative} ({len(content)} bytes) is no attachment's whole content"
    for document in Document.objects.all():
        path = Path(document.root) / document.path
        content = path.read_bytes()
        assert (len(content), hashlib.sha256(content).hexdigest()) == (
            document.size, document.sha256), f"{document} does not match its file"
        assert content == attachments[document.original_name], document


def test_a_share_filling_up_during_an_import_loses_nothing_and_is_retried_later(
        ewsim: SimHandle, tmp_path: Path) -> None:
    rng, seed = seeded_random("full share")
    with small_file_system(tmp_path / "share", SHARE_BYTES) as share, \
            override_settings(ATTACHMENT_ROOTS=[str(share)]):
        store = share / "crm"
        profile = make_profile(ewsim)
        profile.sync_contacts = profile.sync_calendar = False
        profile.import_mail = True
        profile.save()
        profile.organization.attachment_roots = str(share)   # the organization's own root
        profile.organization.save()
        mail = profile.mailsettings
        mail.save_attachments, mail.attachment_directory = True, str(store)
        mail.save()
        attachments: dict[str, bytes] = {}
        for number in range(MAILS):
            mime, files = message(rng, number)
            ewsim.control.deliver(ewsim.user, mime=mime)
            attachments.update(files)
        total = sum(len(c) for c in attachments.values())
        # Everything else on the share: it leaves room for about half the attachments.
        filler = share / "everything else"
        free = os.statvfs(share).f_bavail * os.statvfs(share).f_frsize
        filler.write_bytes(b"\0" * max(0, free - total // 2))
        context = f"(replay with RELIABILITY_SEED={seed})"

        first = Run.objects.get(pk=_run_mail(profile))
        errors = list(first.items.filter(action=RunItem.Action.ERROR))
        assert first.status == Run.Status.PARTIAL and errors, (first.message, context)
        assert all("The share is full" in item.detail and "tried again next run" in item.detail
                   for item in errors), [item.detail for item in errors]
        assert Retry.objects.filter(profile=profile).count() == len(errors), context
        assert Email.objects.count() == MAILS, context
        assert Document.objects.count() < len(attachments), context
        assert_nothing_half_written(store, attachments)
        saved_before = Document.objects.count()

        filler.unlink()   # space freed on the share
        second = Run.objects.get(pk=_run_mail(profile))
        assert second.status == Run.Status.SUCCESS and second.errors == 0, (
            second.message, list(second.items.values_list("detail", flat=True)), context)
        assert_nothing_half_written(store, attachments)
        assert Email.objects.count() == MAILS
        documents = list(Document.objects.select_related("email"))
        assert sorted(d.original_name for d in documents) == sorted(attachments), context
        for document in documents:
            number = document.original_name.split("-")[1]
            assert document.email.message_id == f"<share-{number}@reliability.example>"
        assert sorted(stored_files(store).values()) == sorted(attachments.values())
        assert not Retry.objects.filter(profile=profile).exists()
        print(f"seed {seed}: {MAILS} e-mails, {len(attachments)} attachments "
              f"({total // 1024} kB); {len(errors)} e-mails failed on the full share and "
              f"{len(attachments) - saved_before} attachments were saved after space was freed")

        third = Run.objects.get(pk=_run_mail(profile))
        assert (third.status, third.errors, Document.objects.count()) == (
            Run.Status.SUCCESS, 0, len(attachments))


def _run_mail(profile: object) -> int:
    """One e-mail import job, as a worker runs it; the run's id."""
    jobs.run_job(profile.pk, "mail", trigger="manual")  # type: ignore[attr-defined]
    return Run.objects.filter(agenda="mail").latest("started").pk
