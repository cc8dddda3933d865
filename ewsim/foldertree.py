"""The system and hidden folders every Exchange mailbox has beside the well-known ones.

A real mailbox is more than Inbox, Calendar and Contacts: the non-IPM root holds the store's own
folders (Common Views, Finder, Recoverable Items…), and inside the IPM subtree Exchange keeps
folders that Outlook does not show, several of them contacts folders (Recipient Cache,
Organizational Contacts…). Names and container classes are those exchangelib knows Exchange by
(exchangelib/folders/known_folders.py: `CONTAINER_CLASS`, `LOCALIZED_NAMES`); hidden folders
carry PidTagAttributeHidden (MS-OXPROPS 2.611, tag 0x10F4, PtypBoolean; MS-OXCFOLD
2.2.2.2.2.1: "nonzero if the folder is hidden"), which `render_folder` serves as an extended
property.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, NamedTuple

from lxml import etree

from .ns import T, sub, t_el

if TYPE_CHECKING:
    from .store import Folder, Mailbox, Store

HIDDEN_KEY = "|||0x10f4|Boolean"     # itemxml.ext_key of PidTagAttributeHidden


class SystemFolder(NamedTuple):
    parent: str                  # distinguished id of the parent
    name: str
    folder_class: str | None
    hidden: bool = False
    distinguished: str | None = None   # only ids of the EWS schema's DistinguishedFolderIdNameType


SYSTEM_FOLDERS: tuple[SystemFolder, ...] = (
    # The non-IPM root: outside the IPM subtree, so no client shows them.
    SystemFolder("root", "Common Views", None),
    SystemFolder("root", "Deferred Action", None),
    SystemFolder("root", "ExchangeSyncData", None),
    SystemFolder("root", "Finder", None, distinguished="searchfolders"),
    SystemFolder("root", "Freebusy Data", None),
    SystemFolder("root", "Location", None),
    SystemFolder("root", "MailboxAssociations", None),
    SystemFolder("root", "Recoverable Items", None, distinguished="recoverableitemsroot"),
    SystemFolder("recoverableitemsroot", "Deletions", None,
                 distinguished="recoverableitemsdeletions"),
    SystemFolder("recoverableitemsroot", "Purges", None, distinguished="recoverableitemspurges"),
    SystemFolder("recoverableitemsroot", "Versions", None,
                 distinguished="recoverableitemsversions"),
    SystemFolder("root", "Schedule", None),
    SystemFolder("root", "Shortcuts", None),
    SystemFolder("root", "Spooler Queue", None),
    SystemFolder("root", "System", None),
    SystemFolder("root", "Views", None),
    # The IPM subtree: folders of other kinds, and hidden settings and contacts stores.
    SystemFolder("msgfolderroot", "Conversation Action Settings", "IPF.Configuration", True),
    SystemFolder("msgfolderroot", "Quick Step Settings", "IPF.Configuration", True),
    SystemFolder("msgfolderroot", "ExternalContacts", "IPF.Contact", True),
    SystemFolder("msgfolderroot", "PersonMetadata", "IPF.Contact", True),
    SystemFolder("msgfolderroot", "Files", "IPF.Files", True),
    SystemFolder("msgfolderroot", "Journal", "IPF.Journal", distinguished="journal"),
    SystemFolder("msgfolderroot", "Notes", "IPF.StickyNote", distinguished="notes"),
    SystemFolder("contacts", "Recipient Cache", "IPF.Contact.RecipientCache", True,
                 "recipientcache"),
    SystemFolder("contacts", "Organizational Contacts", "IPF.Contact.OrganizationalContacts",
                 True),
    SystemFolder("contacts", "PeopleCentricConversation Buddies",
                 "IPF.Contact.PeopleCentricConversationBuddies", True),
    SystemFolder("contacts", "Companies", "IPF.Contact.Company", True),
    SystemFolder("contacts", "GAL Contacts", "IPF.Contact.GalContacts", True),
    # Skype for Business' contact lists, named by GUID.
    SystemFolder("contacts", "{06967759-274D-40B2-A3EB-D7F9E73727D7}",
                 "IPF.Contact.MOC.QuickContacts", True, "quickcontacts"),
    SystemFolder("contacts", "{A9E2BC46-B3A0-4243-B315-60D991004455}",
                 "IPF.Contact.MOC.ImContactList", True, "imcontactlist"),
)

# CreateFolder with a plain t:Folder and no FolderClass: the new folder is of its parent's kind
# (a folder made in Contacts is a contacts folder). Microsoft's CreateFolder and FolderClass pages
# do not say which class such a folder gets; this follows issue #23's account of Exchange and
# was not checked against a server.
KIND_CLASSES = ("IPF.Appointment", "IPF.Contact", "IPF.Task", "IPF.StickyNote", "IPF.Journal")


def seed_system_folders(store: Store, mbx: Mailbox) -> None:
    from .store import FOLDER_TAG_BY_CLASS
    for spec in SYSTEM_FOLDERS:
        # Exchange answers with the element of the folder's kind (ContactsFolder for
        # IPF.Contact.RecipientCache too); exchangelib picks its folder class from it.
        base = ".".join((spec.folder_class or "").split(".")[:2])
        folder = store._new_folder(mbx, spec.name, FOLDER_TAG_BY_CLASS.get(base, "Folder"),
                                   spec.folder_class, mbx.distinguished[spec.parent],
                                   spec.distinguished)
        folder.hidden = spec.hidden
        folder.system = True


def inherited_class(parent: Folder) -> str:
    """The class a new plain folder gets under `parent`: the parent's kind (its base class, so
    a folder made under a system subclass such as IPF.Contact.RecipientCache is IPF.Contact)."""
    for cls in KIND_CLASSES:
        if parent.folder_class == cls or (parent.folder_class or "").startswith(cls + "."):
            return cls
    return "IPF.Note"


def subtree(store: Store, folder: Folder) -> list[Folder]:
    """`folder` and every folder below it, children before their parents."""
    out: list[Folder] = []
    for child_id in list(folder.children):
        out.extend(subtree(store, store.folders[child_id]))
    out.append(folder)
    return out


def inside(store: Store, folder: Folder, ancestor: Folder) -> bool:
    current: Folder | None = folder
    while current is not None:
        if current.id == ancestor.id:
            return True
        current = store.folders.get(current.parent_id) if current.parent_id else None
    return False


def extended_properties(folder: Folder, uris: list[etree._Element]) -> list[etree._Element]:
    """The requested extended properties the folder has: PidTagAttributeHidden when set (a
    property never set is left out, as Exchange leaves out any unset property)."""
    from .itemxml import ext_key
    out = []
    for uri in uris:
        if ext_key(uri) == HIDDEN_KEY and folder.hidden:
            prop = t_el("ExtendedProperty")
            prop.append(copy.deepcopy(uri))   # echoed verbatim: exchangelib compares attributes
            sub(prop, T, "Value", "true")
            out.append(prop)
    return out
