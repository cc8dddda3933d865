"""The folder tree of a new mailbox: the well-known folders plus the system and hidden folders
Exchange keeps, and the class CreateFolder gives a plain folder by where it is made.

Names and container classes: exchangelib's folders/known_folders.py (`CONTAINER_CLASS`,
`LOCALIZED_NAMES`), which follows what Exchange servers answer. The hidden flag is
PidTagAttributeHidden, MS-OXPROPS 2.611 (https://learn.microsoft.com/en-us/openspecs/
exchange_server_protocols/ms-oxprops/01b52d3c-d194-4a8c-83ee-4ac7506339da): tag 0x10F4,
PtypBoolean; MS-OXCFOLD 2.2.2.2.2.1: "nonzero if the folder is hidden".
"""

from __future__ import annotations

from typing import Any

from exchangelib import Folder

from ewsim.testing import SimHandle

from .folder_helpers import tree


def test_the_non_ipm_root_holds_the_stores_system_folders(account: Any) -> None:
    below_root = tree(account, account.root)
    assert {"Top of Information Store", "Common Views", "Deferred Action", "ExchangeSyncData",
            "Finder", "Freebusy Data", "Recoverable Items", "Schedule", "Shortcuts",
            "Spooler Queue", "System", "Views"} <= set(below_root)
    recoverable = account.root / "Recoverable Items"
    assert {f.name for f in recoverable.children} == {"Deletions", "Purges", "Versions"}


def test_contacts_holds_hidden_contacts_folders_of_their_own_classes(account: Any) -> None:
    below = tree(account, account.contacts)
    assert {name: (f["class"], f["hidden"]) for name, f in below.items()} == {
        "Recipient Cache": ("IPF.Contact.RecipientCache", True),
        "Organizational Contacts": ("IPF.Contact.OrganizationalContacts", True),
        "PeopleCentricConversation Buddies": ("IPF.Contact.PeopleCentricConversationBuddies",
                                              True),
        "Companies": ("IPF.Contact.Company", True),
        "GAL Contacts": ("IPF.Contact.GalContacts", True),
        "{06967759-274D-40B2-A3EB-D7F9E73727D7}": ("IPF.Contact.MOC.QuickContacts", True),
        "{A9E2BC46-B3A0-4243-B315-60D991004455}": ("IPF.Contact.MOC.ImContactList", True),
    }
    # Exchange answers with the element of the folder's kind, subclasses included.
    assert {f["element"] for f in below.values()} == {"ContactsFolder"}


def test_the_top_of_the_store_has_hidden_settings_folders_and_visible_well_known_ones(
        account: Any) -> None:
    top = tree(account, account.msg_folder_root)
    assert top["Conversation Action Settings"] == {
        "element": "Folder", "class": "IPF.Configuration", "hidden": True}
    assert top["ExternalContacts"]["hidden"] and top["PersonMetadata"]["hidden"]
    for name in ("Inbox", "Calendar", "Contacts", "Sent Items", "Deleted Items"):
        assert top[name]["hidden"] is False, name


def test_well_known_system_folders_answer_to_their_distinguished_ids(account: Any) -> None:
    from exchangelib.folders import RecipientCache, RecoverableItemsRoot
    assert account.root.get_default_folder(RecipientCache).name == "Recipient Cache"
    assert account.root.get_default_folder(RecoverableItemsRoot).name == "Recoverable Items"


def test_a_plain_folder_takes_the_kind_of_the_folder_it_is_made_in(account: Any) -> None:
    # exchangelib's Folder(parent=…) sends a t:Folder with no FolderClass (CreateFolder operation,
    # learn.microsoft.com/exchange/client-developer/web-service-reference/createfolder-operation;
    # FolderClass: …/web-service-reference/folderclass). Neither page says which class the folder
    # gets; the parent's kind is the behaviour issue #23 reports for Exchange (not verified).
    for parent, name in ((account.contacts, "People"), (account.calendar, "Dates"),
                         (account.inbox, "Projects")):
        Folder(parent=parent, name=name).save()
    found = tree(account, account.msg_folder_root, depth="Deep")
    assert (found["People"]["class"], found["People"]["element"]) == (
        "IPF.Contact", "ContactsFolder")
    assert (found["Dates"]["class"], found["Dates"]["element"]) == (
        "IPF.Appointment", "CalendarFolder")
    assert found["Projects"]["class"] == "IPF.Note"
    assert not any(found[n]["hidden"] for n in ("People", "Dates", "Projects"))


def test_every_new_mailbox_gets_the_tree_not_only_the_demo_ones(ewsim: SimHandle) -> None:
    ewsim.control.add_user("bob@example.com", "bob-pw")
    names = {f["name"] for f in ewsim.control.call("GET", "folders",
                                                     {"mailbox": "bob@example.com"})}
    assert {"Recipient Cache", "Common Views", "Conversation Action Settings"} <= names
