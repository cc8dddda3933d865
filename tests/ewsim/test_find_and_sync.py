from __future__ import annotations

import datetime as dt

import pytest
from exchangelib import Contact, EWSDateTime, Q
from exchangelib.errors import ErrorInvalidSyncStateData
from exchangelib.properties import UID, FolderId
from exchangelib.services import SyncFolderItems

from .conftest import TZ


def _contacts(account, n):
    items = [Contact(account=account, folder=account.contacts, display_name=f"Person {i:03d}",
                     given_name=f"G{i}", crm_id=f"CRM-{i}") for i in range(n)]
    return account.bulk_create(folder=account.contacts, items=items)


def test_find_item_pages_through_a_folder(account):
    _contacts(account, 23)
    qs = account.contacts.all().only("display_name")
    qs.page_size = 5
    names = [c.display_name for c in qs]
    assert len(names) == 23 and len(set(names)) == 23
    assert account.contacts.all().count() == 23
    assert [c.display_name for c in account.contacts.all().order_by("-display_name")[:2]] == [
        "Person 022", "Person 021"]


def test_an_item_is_found_by_its_crm_id_stamp(account):
    _contacts(account, 10)
    found = list(account.contacts.filter(crm_id="CRM-7").only("display_name", "crm_id"))
    assert [(c.display_name, c.crm_id) for c in found] == [("Person 007", "CRM-7")]


def test_restrictions_cover_equality_contains_and_date_comparisons(ewsim, account):
    for i in range(3):
        ewsim.control.deliver(ewsim.user, subject=f"Offer {i}", body="x",
                              received=f"2025-01-0{i + 1}T10:00:00Z", is_read=(i == 0))
    ewsim.control.deliver(ewsim.user, subject="Invoice", received="2025-02-01T10:00:00Z")
    inbox = account.inbox
    assert inbox.filter(subject="Invoice").count() == 1
    assert inbox.filter(subject__icontains="offer").count() == 3
    since = EWSDateTime(2025, 1, 2, tzinfo=TZ)
    assert sorted(m.subject for m in inbox.filter(datetime_received__gte=since)) == [
        "Invoice", "Offer 1", "Offer 2"]
    assert inbox.filter(Q(is_read=False) & Q(subject__contains="Offer")).count() == 2
    assert inbox.filter(Q(subject="Invoice") | Q(subject="Offer 0")).count() == 2
    ordered = [m.subject for m in inbox.all().order_by("datetime_received").only("subject")]
    assert ordered == ["Offer 0", "Offer 1", "Offer 2", "Invoice"]


def test_sync_returns_net_changes_across_pages(ewsim, account):
    results = _contacts(account, 7)
    folder = account.contacts
    changes = list(folder.sync_items(only_fields=["display_name"], max_changes_returned=3))
    assert [c[0] for c in changes] == ["create"] * 7
    state = folder.item_sync_state
    # another client edits, deletes, creates-then-deletes
    ewsim.control.update_item(results[0].id, DisplayName="Edited")
    ewsim.control.delete_item(results[1].id)
    tmp = ewsim.control.create_item(ewsim.user, "contacts", tag="Contact", DisplayName="tmp")
    ewsim.control.delete_item(tmp["id"])
    new = ewsim.control.create_item(ewsim.user, "contacts", tag="Contact", DisplayName="New")
    ewsim.control.update_item(new["id"], DisplayName="New 2")
    changes = list(folder.sync_items(sync_state=state, only_fields=["display_name"],
                                     max_changes_returned=1))
    kinds = [(k, getattr(o, "display_name", None)) for k, o in changes]
    assert kinds == [("update", "Edited"), ("delete", None), ("create", "New 2")]
    # nothing new: empty page, state stays usable
    assert list(folder.sync_items(sync_state=folder.item_sync_state)) == []


def test_read_flag_changes_are_reported_as_such(ewsim, account):
    msg = ewsim.control.deliver(ewsim.user, subject="Hello")
    folder = account.inbox
    list(folder.sync_items(only_fields=["subject"]))
    state = folder.item_sync_state
    ewsim.control.update_item(msg["id"], IsRead=True)
    changes = list(folder.sync_items(sync_state=state, only_fields=["subject"]))
    assert len(changes) == 1 and changes[0][0] == "read_flag_change"
    _item_id, is_read = changes[0][1]
    assert is_read is True


def test_sync_state_can_be_checkpointed_per_page(account):
    _contacts(account, 5)
    svc = SyncFolderItems(account=account)
    pages, state = 0, None
    while True:
        list(svc.call(folder=account.contacts, shape="IdOnly", additional_fields=set(),
                      sync_state=state, ignore=None, max_changes_returned=2,
                      sync_scope="NormalItems"))
        pages += 1
        state = svc.sync_state
        if svc.includes_last_item_in_range:
            break
    assert pages == 3


def test_a_bad_sync_state_is_invalid_sync_state_data(account):
    with pytest.raises(ErrorInvalidSyncStateData):
        list(account.contacts.sync_items(sync_state="H4sIbogus"))


def test_calendar_view_truncates_at_max_items(account):
    from exchangelib import CalendarItem
    start = EWSDateTime(2025, 4, 1, 8, 0, tzinfo=TZ)
    for i in range(5):
        CalendarItem(account=account, folder=account.calendar, subject=f"E{i}",
                     start=start + dt.timedelta(days=i),
                     end=start + dt.timedelta(days=i, hours=1)).save()
    view = list(account.calendar.view(start=start, end=start + dt.timedelta(days=10),
                                      max_items=3))
    assert [e.subject for e in view] == ["E0", "E1", "E2"]


def test_folders_are_listed_as_a_tree(ewsim, account):
    from exchangelib import Folder
    from exchangelib.folders import Contacts
    crm = Contacts(parent=account.contacts, name="CRM")
    crm.save()
    Folder(parent=account.inbox, name="Projects").save()
    names = {f.name for f in account.root.walk()}
    assert {"Inbox", "Calendar", "Contacts", "CRM", "Projects"} <= names
    shallow = {f.name for f in account.msg_folder_root.children}
    assert "CRM" not in shallow and "Contacts" in shallow
    assert (account.contacts / "CRM").name == "CRM"


def _folder(ewsim, parent, name, folder_class):
    made = ewsim.control.call("POST", "folders", {"mailbox": ewsim.user, "parent": parent,
                                                  "name": name, "folder_class": folder_class})
    return made["id"]


GOID_UID = ("040000008200E00074C5B7101A82E00807EA0C0500000000A0B1C2D3E4F5A6B7000000000000"
            "000010000000F1E2D3C4B5A69788796A5B4C3D2E1F00")


def test_a_calendar_items_clean_global_object_id_is_its_uid_and_survives_a_move(ewsim,
                                                                                 account):
    """Exchange computes PidLidCleanGlobalObjectId from the UID (MS-OXOCAL 2.2.1.27-28): an
    Outlook UID is the id in hex (its instance date zeroed), any other UID is wrapped as
    "vCal-Uid" (exchangelib's UID helper builds that)."""
    for uid, subject in (("meeting-42@example.com", "From iCal"), (GOID_UID, "From Outlook")):
        ewsim.control.create_item(ewsim.user, folder="calendar", tag="CalendarItem", xml=(
            f"<t:CalendarItem><t:Subject>{subject}</t:Subject><t:UID>{uid}</t:UID>"
            "<t:Start>2030-03-05T09:00:00Z</t:Start><t:End>2030-03-05T10:00:00Z</t:End>"
            "</t:CalendarItem>"))
    clean = bytes.fromhex(GOID_UID[:32] + "00000000" + GOID_UID[40:])
    assert [e.subject for e in account.calendar.filter(clean_goid=UID("meeting-42@example.com"))
            ] == ["From iCal"]
    outlook = account.calendar.get(clean_goid=clean)
    assert outlook.subject == "From Outlook" and outlook.clean_goid == clean
    old = _folder(ewsim, "calendar", "Old", "IPF.Appointment")
    moved = ewsim.control.move_item(outlook.id, old)["id"]
    assert moved != outlook.id
    there = account.root.get_folder(FolderId(id=old))
    assert [e.id for e in there.filter(clean_goid=clean)] == [moved]
    assert not account.calendar.filter(clean_goid=clean).exists()
