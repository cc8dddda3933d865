"""A folder chosen in a profile is looked up by its id; one that is gone is a plain error."""

from __future__ import annotations

import pytest

from engine.mailbox.base import FolderNotFound
from engine.mailbox.ews import EwsMailbox
from engine.records import Kind
from ewsim.testing import SimHandle


def test_a_folder_chosen_in_the_picker_is_found_by_its_id(ewsim: SimHandle,
                                                          mailbox: EwsMailbox) -> None:
    created = ewsim.control.call("POST", "folders", {
        "mailbox": ewsim.user, "parent": "calendar", "name": "CRM",
        "folder_class": "IPF.Appointment"})
    listed = {f.path: f for f in mailbox.list_folders(Kind.CALENDAR)}
    assert listed["Calendar/CRM"].id == created["id"]
    folder = mailbox.get_folder(created["id"], Kind.CALENDAR)
    assert (folder.id, folder.kind) == (created["id"], Kind.CALENDAR)


@pytest.mark.parametrize("folder_id", ["AAMkAGI2TG93AAA=", "not-an-id"])
def test_a_chosen_folder_that_no_longer_exists_is_folder_not_found_in_plain_words(
        mailbox: EwsMailbox, folder_id: str) -> None:
    with pytest.raises(FolderNotFound, match="no longer exists in the mailbox: choose it again"):
        mailbox.get_folder(folder_id, Kind.CALENDAR)


def test_a_folder_of_another_kind_is_not_taken_for_a_calendar(mailbox: EwsMailbox) -> None:
    with pytest.raises(FolderNotFound, match="does not hold calendar"):
        mailbox.get_folder("contacts", Kind.CALENDAR)
