"""Every message an import run looks at leaves a line in the run's history (PRODUCT.md §5):
imported, linked to one more user, skipped with the reason, or failed. End to end on both
kinds of connection, wherever the case exists there."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from crm.models import Email
from engine.models import Retry, Run, RunItem
from ewsim.testing import SimHandle
from mailimport import storage
from profiles.models import SyncProfile
from tests.mailimport.conftest import (
    give_roots,
    import_mail,
    mail_profile,
    mime,
    settings_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


def lines(run: Run) -> list[tuple[str, str, str]]:
    return list(run.items.values_list("action", "title", "detail"))


def test_a_copy_of_a_filed_message_in_another_folder_is_skipped_as_its_duplicate(
        ewsim: SimHandle, connection_kind: str) -> None:
    profile = mail_profile(ewsim, connection_kind)
    raw = mime("Poznámka pro sebe", sender="alice@example.com", message_id="<self@example.com>")
    ewsim.control.deliver(ewsim.user, mime=raw)                        # Inbox
    ewsim.control.deliver(ewsim.user, folder="sentitems", mime=raw)   # and Sent Items
    run = import_mail(profile)
    email = Email.objects.get()
    (filed, copy) = lines(run)
    assert filed[0] == RunItem.Action.CREATE_CRM
    assert copy[:2] == (RunItem.Action.SKIP, "Poznámka pro sebe")
    assert f"duplicate of e-mail #{email.pk}" in copy[2]
    assert run.skipped == 1


def test_a_filed_message_that_changed_in_the_mailbox_is_skipped_as_filed_already(
        ewsim: SimHandle, connection_kind: str) -> None:
    profile = mail_profile(ewsim, connection_kind)
    delivered = ewsim.control.deliver(ewsim.user, mime=mime("Nabídka",
                                                            message_id="<n@stavby.cz>"))
    import_mail(profile)
    ewsim.control.update_item(delivered["id"], Categories=["Zákazník"])   # in Outlook
    run = import_mail(profile)
    ((action, _, detail),) = lines(run)
    assert action == RunItem.Action.SKIP
    assert f"filed already as e-mail #{Email.objects.get().pk}" in detail


def test_an_item_that_is_no_email_is_skipped(ewsim: SimHandle) -> None:
    # Graph lists only messages in a mail folder: the case exists on EWS alone.
    profile = mail_profile(ewsim, "ews")
    ewsim.control.create_item(ewsim.user, folder="inbox", tag="Contact",
                              DisplayName="Petr Svoboda", GivenName="Petr")
    run = import_mail(profile)
    assert run.status == Run.Status.SUCCESS, run.message
    ((action, _, detail),) = lines(run)
    assert action == RunItem.Action.SKIP and "not an e-mail (a contact)" in detail
    assert not Email.objects.exists()


def failed_once(sim: SimHandle, kind: str, share: Path, days_ago: int = 1
                ) -> tuple[SyncProfile, dict]:
    """Alice's profile, whose first run could not save a message's attachment (the share
    was full): the message waits to be tried again."""
    profile = mail_profile(sim, kind)
    give_roots(profile, share)
    settings_for(profile, save_attachments=True, attachment_directory=str(share))
    delivered = sim.control.deliver(sim.user, mime=mime(
        "Smlouva", message_id="<s@stavby.cz>", days_ago=days_ago,
        attachments=(("smlouva.pdf", b"%PDF-1.4 smlouva"),)))

    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    real, storage._write = storage._write, full  # type: ignore[assignment]
    try:
        first = import_mail(profile)
    finally:
        storage._write = real
    assert first.errors == 1 and Retry.objects.count() == 1
    return profile, delivered


def test_a_failed_message_gone_from_the_mailbox_before_its_retry_is_recorded(
        ewsim: SimHandle, connection_kind: str, share: Path) -> None:
    profile, delivered = failed_once(ewsim, connection_kind, share)
    ewsim.control.delete_item(delivered["id"])
    run = import_mail(profile)
    assert run.status == Run.Status.SUCCESS, run.message
    ((action, title, detail),) = lines(run)
    assert (action, title) == (RunItem.Action.SKIP, "Smlouva")
    assert "no longer in the mailbox" in detail
    assert not Retry.objects.exists()


def test_a_failed_message_older_than_the_window_at_its_retry_is_recorded(
        ewsim: SimHandle, connection_kind: str, share: Path) -> None:
    profile, _ = failed_once(ewsim, connection_kind, share, days_ago=3)
    settings_for(profile, received_within_days=2)
    run = import_mail(profile)
    ((action, title, detail),) = lines(run)
    assert (action, title) == (RunItem.Action.SKIP, "Smlouva")
    assert "before the import window (the last 2 days)" in detail
    assert not Retry.objects.exists()


def test_a_retry_the_mailbox_refuses_to_read_is_recorded_and_kept(
        ewsim: SimHandle, share: Path) -> None:
    profile, _ = failed_once(ewsim, "ews", share)
    ewsim.control.call("POST", "faults", {"kind": "response_error", "operation": "GetItem",
                                          "response_code": "ErrorCorruptData"})
    run = import_mail(profile)
    ((action, _, detail),) = lines(run)
    assert action == RunItem.Action.ERROR and "tried again next run" in detail
    assert Retry.objects.count() == 1
    assert import_mail(profile).crm_updated == 1    # its attachment, saved at last
    assert not Retry.objects.exists()


def test_mail_the_server_lists_from_before_the_window_is_skipped_as_too_old(
        ewsim: SimHandle) -> None:
    # Exchange Online filters it out itself (Graph's delta asks for newer mail only): the
    # import never sees it there.
    profile = mail_profile(ewsim, "ews")
    ewsim.control.deliver(ewsim.user, mime=mime("Stará nabídka", days_ago=60))
    ewsim.control.deliver(ewsim.user, mime=mime("Nová nabídka"))
    run = import_mail(profile)
    (old,) = run.items.filter(action=RunItem.Action.SKIP)
    assert old.title == "Stará nabídka" and old.remote_id
    assert "before the import window (the last 31 days)" in old.detail
    assert (run.skipped, run.crm_created) == (1, 1)
