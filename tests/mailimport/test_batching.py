"""Attachments of imported e-mails read in batches, on both kinds of connection: small ones
many per request, large ones streamed one by one, and one that cannot be read failing its own
e-mail only (tried again by the next run)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from crm.models import Document, Email
from engine.mailbox.base import SMALL_ATTACHMENT_BYTES
from engine.models import Retry, Run, RunItem
from ewsim.testing import SimHandle
from profiles.models import SyncProfile
from tests.mailimport.conftest import give_roots, import_mail, mail_profile, mime, settings_for

pytestmark = pytest.mark.django_db(transaction=True)

MANY = 150


def saving(sim: SimHandle, kind: str, share: Path) -> SyncProfile:
    profile = mail_profile(sim, kind)
    give_roots(profile, share)
    settings_for(profile, save_attachments=True, attachment_directory=str(share))
    return profile


def offer(i: int, *sizes: int) -> bytes:
    """E-mail `i` with a .pdf of each size, every one of its own content."""
    rng = random.Random(i)
    return mime(f"Nabídka {i}", message_id=f"<offer-{i}@stavby.cz>",
                attachments=tuple((f"nabidka-{i}-{n}.pdf", rng.randbytes(size))
                                  for n, size in enumerate(sizes)))


def saved_contents() -> dict[str, bytes]:
    return {d.original_name: (Path(d.root) / d.path).read_bytes()
            for d in Document.objects.all()}


def test_small_attachments_of_many_e_mails_take_a_few_requests(
        ewsim: SimHandle, connection_kind: str, share: Path) -> None:
    profile = saving(ewsim, connection_kind, share)
    for i in range(MANY):
        ewsim.control.deliver(ewsim.user, mime=offer(i, 3000, 5000))
    ewsim.control.reset_counters()
    run = import_mail(profile)
    assert run.status == Run.Status.SUCCESS and run.errors == 0, run.message
    assert Email.objects.count() == MANY and Document.objects.count() == 2 * MANY
    assert len(saved_contents()[f"nabidka-{MANY - 1}-1.pdf"]) == 5000
    if connection_kind == "ews":
        # Changes in 2 pages, their messages in 2 GetItems, 300 attachments in 4 GetAttachments
        # (at most 100 ids each): 2 per e-mail before.
        assert ewsim.control.ids_asked() == {"GetAttachment": 2 * MANY}
        assert ewsim.control.counters()["GetAttachment"] <= 4
        assert run.requests <= 10, ewsim.control.counters()
    else:
        # The delta lists each message's attachments with their sizes, so each message is
        # fetched with their contents, 20 per `$batch`: 150 in 8, the delta and the folder
        # the other 3; no attachment read on its own (300 operations, 15 `$batch`es more,
        # before).
        counters = ewsim.server.graph.counters
        assert "attachments.get" not in counters and "attachments.value" not in counters
        assert counters["messages.get"] == MANY
        assert run.requests <= 11


def test_a_large_attachment_is_streamed_on_its_own(
        ewsim: SimHandle, connection_kind: str, share: Path) -> None:
    profile = saving(ewsim, connection_kind, share)
    large, small = SMALL_ATTACHMENT_BYTES + 1, 4000
    ewsim.control.deliver(ewsim.user, mime=offer(1, large, small))
    ewsim.control.reset_counters()
    run = import_mail(profile)
    assert run.status == Run.Status.SUCCESS and run.errors == 0, run.message
    rng = random.Random(1)
    assert saved_contents() == {"nabidka-1-0.pdf": rng.randbytes(large),
                                "nabidka-1-1.pdf": rng.randbytes(small)}
    if connection_kind == "ews":
        # Two requests of one id each: the small one read ahead, the large one streamed.
        assert ewsim.control.counters()["GetAttachment"] == 2
        assert ewsim.control.ids_asked() == {"GetAttachment": 2}
    else:
        counters = ewsim.server.graph.counters
        assert (counters["attachments.get"], counters["attachments.value"]) == (1, 1)


def break_one_attachment(sim: SimHandle, kind: str, subject: str) -> object:
    """Make one attachment of the e-mail `subject` unreadable while the e-mail still lists it;
    return what makes it readable again (EWS: the attachment taken out of the store)."""
    if kind == "graph":
        # The first attachment read fails as gone (which one: the first answered).
        sim.control.fault("soap_fault", operation="attachments.get", status=404,
                              response_code="ErrorItemNotFound", count=1)
        return None
    store = sim.server.store
    attachment_id = next(att_id for att_id, (item, _) in store.attachments.items()
                         if item.text("Subject") == subject)
    return attachment_id, store.attachments.pop(attachment_id)


def test_an_attachment_that_cannot_be_read_fails_its_own_e_mail_only(
        ewsim: SimHandle, connection_kind: str, share: Path) -> None:
    profile = saving(ewsim, connection_kind, share)
    for i in range(5):
        # On Graph, e-mail 2's small attachment is read on its own (not with its message)
        # because its other one is large.
        sizes = (3000, SMALL_ATTACHMENT_BYTES + 1) if connection_kind == "graph" and i == 2 \
            else (3000, 4000)
        ewsim.control.deliver(ewsim.user, mime=offer(i, *sizes))
    broken = break_one_attachment(ewsim, connection_kind, "Nabídka 2")
    run = import_mail(profile)
    assert run.status != Run.Status.FAILED and run.errors == 1, run.message
    (failed,) = run.items.filter(action=RunItem.Action.ERROR)
    assert "tried again next run" in failed.detail
    assert Retry.objects.filter(profile=profile, key=failed.remote_id).exists()
    assert Email.objects.count() == 5   # filed, the one failing with the documents it has
    assert Document.objects.count() == 9
    if broken is not None:
        attachment_id, found = broken   # type: ignore[misc]
        ewsim.server.store.attachments[attachment_id] = found
    again = import_mail(profile)
    assert again.errors == 0, again.message
    assert not Retry.objects.filter(profile=profile).exists()
    assert Document.objects.count() == 10
    assert Email.objects.count() == 5


def test_the_same_content_in_e_mails_read_together_is_stored_once(
        ewsim: SimHandle, connection_kind: str, share: Path) -> None:
    # Saved side by side as they are, the same content must still be found, not stored twice.
    profile = saving(ewsim, connection_kind, share)
    same = b"%PDF-1.4 " + random.Random(7).randbytes(6000)
    for i in range(4):
        ewsim.control.deliver(ewsim.user, mime=mime(
            f"Odpověď {i}", message_id=f"<reply-{i}@stavby.cz>",
            attachments=((f"podminky-{i}.pdf", same), (f"vlastni-{i}.pdf", bytes([i]) * 900))))
    run = import_mail(profile)
    assert run.status == Run.Status.SUCCESS and run.errors == 0, run.message
    paths = {d.original_name: d.path for d in Document.objects.all()}
    assert len(paths) == 8
    assert len({paths[f"podminky-{i}.pdf"] for i in range(4)}) == 1
    assert len({paths[f"vlastni-{i}.pdf"] for i in range(4)}) == 4
    details = [item.detail for item in run.items.order_by("pk")]
    assert sum("has the same content: stored once" in detail for detail in details) == 3
    files = [p for p in share.rglob("*.pdf") if ".sha256" not in p.parts]
    assert len(files) == 5
