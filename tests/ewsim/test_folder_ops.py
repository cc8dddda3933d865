"""DeleteFolder, UpdateFolder and CopyItem through unmodified exchangelib, so tests can clean up
after themselves as they would on a real server.

Microsoft's documentation of each behaviour:
- DeleteFolder operation and its DeleteType (HardDelete, SoftDelete, MoveToDeletedItems):
  https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deletefolder-operation
  https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deletefolder
- ErrorDeleteDistinguishedFolder ("distinguished folders cannot be deleted"), ErrorFolderExists,
  ErrorCannotDeleteObject: ResponseCode, https://learn.microsoft.com/en-us/exchange/client-
  developer/web-service-reference/responsecode
- UpdateFolder operation (SetFolderField): https://learn.microsoft.com/en-us/exchange/client-
  developer/web-service-reference/updatefolder-operation
- CopyItem operation (a copy with a new ItemId in the target folder):
  https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/copyitem-operation
- CopiedEvent (an item copied, with OldItemId and OldParentFolderId):
  https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/copiedevent
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from exchangelib import CalendarItem, Contact, EWSDateTime, FileAttachment, Folder, Message
from exchangelib.errors import (
    ErrorCalendarCannotMoveOrCopyOccurrence,
    ErrorCannotDeleteObject,
    ErrorDeleteDistinguishedFolder,
    ErrorFolderExists,
    ErrorFolderNotFound,
    ErrorItemNotFound,
)
from exchangelib.folders import Contacts
from exchangelib.items import MOVE_TO_DELETED_ITEMS, SOFT_DELETE
from exchangelib.properties import FolderId
from exchangelib.recurrence import DailyPattern, Recurrence
from exchangelib.services import DeleteFolder, GetFolder

from ewsim.testing import SimHandle

from .conftest import TZ
from .folder_helpers import hide_folder, tree


def _folders(sim: SimHandle) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in sim.control.call("GET", "folders", {"mailbox": sim.user})}


def _contact_in(account: Any, folder: Any, name: str) -> Contact:
    contact = Contact(account=account, folder=folder, display_name=name, given_name=name)
    contact.save()
    return contact


def test_a_hard_deleted_folder_goes_with_its_subfolders_and_items(ewsim, account) -> None:
    old = Contacts(parent=account.contacts, name="Old").save()
    inner = Contacts(parent=old, name="Inner").save()
    kept = _contact_in(account, old, "Kept")
    below = _contact_in(account, inner, "Below")
    old_id = old.id
    old.delete()
    (answer,) = list(GetFolder(account=account).call(folders=[FolderId(id=old_id)],
                                                     additional_fields=set(), shape="IdOnly"))
    assert isinstance(answer, ErrorFolderNotFound)
    names = _folders(ewsim)
    assert "Old" not in names and "Inner" not in names
    for item in (kept, below):
        (answer,) = list(account.fetch(ids=[item]))
        assert isinstance(answer, ErrorItemNotFound)


def test_a_soft_deleted_folder_is_gone_from_the_mailbox(ewsim, account) -> None:
    Folder(parent=account.inbox, name="Scratch").save().delete(delete_type=SOFT_DELETE)
    assert "Scratch" not in _folders(ewsim)


def test_a_folder_moved_to_deleted_items_keeps_its_id_and_content(ewsim, account) -> None:
    crm = Contacts(parent=account.contacts, name="CRM").save()
    contact = _contact_in(account, crm, "Eva")
    crm_id = crm.id
    crm.delete(delete_type=MOVE_TO_DELETED_ITEMS)
    folders = _folders(ewsim)
    assert folders["CRM"]["id"] == crm_id
    assert folders["CRM"]["parent_id"] == folders["Deleted Items"]["id"]
    assert folders["CRM"]["total"] == 1
    (still,) = list(account.fetch(ids=[contact]))
    assert still.display_name == "Eva"
    # Deleting it from Deleted Items removes it for good.
    DeleteFolder(account=account).get(folders=[FolderId(id=folders["CRM"]["id"])],
                                      delete_type=MOVE_TO_DELETED_ITEMS)
    assert "CRM" not in _folders(ewsim)


def test_distinguished_and_system_folders_cannot_be_deleted(ewsim, account) -> None:
    with pytest.raises(ErrorDeleteDistinguishedFolder):
        account.inbox.delete()
    with pytest.raises(ErrorCannotDeleteObject):
        (account.root / "Common Views").delete()
    assert {"Inbox", "Common Views"} <= set(_folders(ewsim))


def test_a_folder_is_renamed_with_update_fields(ewsim, account) -> None:
    folder = Folder(parent=account.inbox, name="Draft name").save()
    before = folder.changekey
    folder.name = "Final name"
    folder.save(update_fields=["name"])
    assert folder.changekey != before
    names = _folders(ewsim)
    assert "Final name" in names and "Draft name" not in names


def test_a_full_save_of_a_folder_is_accepted(ewsim, account) -> None:
    # exchangelib's save() without update_fields sets every writable field (the class too)
    # and deletes the empty permission set.
    folder = Contacts(parent=account.contacts, name="Partners").save()
    folder.name = "Suppliers"
    folder.save()
    assert _folders(ewsim)["Suppliers"]["id"] == folder.id


def test_renaming_onto_a_siblings_name_is_refused(ewsim, account) -> None:
    Folder(parent=account.inbox, name="Taken").save()
    other = Folder(parent=account.inbox, name="Free").save()
    other.name = "taken"
    with pytest.raises(ErrorFolderExists):
        other.save(update_fields=["name"])
    assert "Free" in _folders(ewsim)


def test_a_copy_is_a_new_item_with_the_same_content(ewsim, account) -> None:
    backup = Contacts(parent=account.contacts, name="Backup").save()
    original = Contact(account=account, folder=account.contacts, display_name="Jana Nová",
                       given_name="Jana", crm_id="CRM-7")
    original.save()
    original.attach(FileAttachment(name="card.txt", content=b"vcard"))
    new_id, new_changekey = original.copy(to_folder=backup)
    assert new_id != original.id and new_changekey
    (copy,) = list(account.fetch(ids=[(new_id, new_changekey)]))
    assert (copy.display_name, copy.given_name, copy.crm_id) == ("Jana Nová", "Jana", "CRM-7")
    assert copy.parent_folder_id.id == backup.id
    [att] = copy.attachments
    assert att.content == b"vcard"
    assert att.attachment_id.id != original.attachments[0].attachment_id.id
    # The original stays where it was.
    assert [c.display_name for c in account.contacts.all().only("display_name")] == ["Jana Nová"]


def test_a_copy_is_a_create_for_sync_and_a_copied_event_for_subscriptions(ewsim, account):
    message = Message(account=account, folder=account.inbox, subject="Minutes")
    message.save()
    archive = Folder(parent=account.inbox, name="Archive").save()
    list(archive.sync_items(only_fields=["subject"]))   # the state of the empty folder
    sub_id, watermark = archive.subscribe_to_pull()
    new_id, _ = message.copy(to_folder=archive)
    changes = list(archive.sync_items(sync_state=archive.item_sync_state,
                                      only_fields=["subject"]))
    assert [(kind, item.subject) for kind, item in changes] == [("create", "Minutes")]
    events = [e for n in archive.get_events(sub_id, watermark) for e in n.events
              if type(e).__name__ != "StatusEvent"]
    assert [type(e).__name__ for e in events] == ["CopiedEvent"]
    assert (events[0].item_id.id, events[0].old_item_id.id) == (new_id, message.id)
    assert events[0].old_parent_folder_id.id == account.inbox.id


def test_update_folder_sets_and_clears_the_hidden_flag(ewsim, account) -> None:
    folder = Folder(parent=account.inbox, name="Tucked").save()
    assert hide_folder(ewsim, folder.id).get("ResponseClass") == "Success"
    assert tree(account, account.inbox)["Tucked"]["hidden"] is True
    hide_folder(ewsim, folder.id, hidden=False)
    assert tree(account, account.inbox)["Tucked"]["hidden"] is False


def test_a_calendar_item_copy_is_a_meeting_of_its_own(ewsim, account) -> None:
    start = EWSDateTime(2026, 3, 2, 10, tzinfo=TZ)
    event = CalendarItem(account=account, folder=account.calendar, subject="Review",
                         start=start, end=start + dt.timedelta(hours=1))
    event.save()
    other = Folder(parent=account.calendar, name="Team").save()
    new_id, new_changekey = event.copy(to_folder=other)
    (copy,) = list(account.fetch(ids=[(new_id, new_changekey)]))
    assert (copy.subject, copy.start) == ("Review", start)
    assert copy.uid != event.uid


def test_an_occurrence_cannot_be_copied(ewsim, account) -> None:
    start = EWSDateTime(2026, 3, 2, 10, tzinfo=TZ)
    series = CalendarItem(account=account, folder=account.calendar, subject="Daily",
                          start=start, end=start + dt.timedelta(minutes=15),
                          recurrence=Recurrence(pattern=DailyPattern(interval=1),
                                                start=start.date(), number=3))
    series.save()
    first = series.occurrence(index=1)
    first.refresh()
    with pytest.raises(ErrorCalendarCannotMoveOrCopyOccurrence):
        first.copy(to_folder=account.calendar)
