"""In-memory mailbox store: users, mailboxes -> folders -> items, with indexes.

All access happens under `Store.lock` (one RLock): requests are short and the
simulator values simple correctness over parallel throughput. Large attachment
payloads are immutable `bytes`, so they can be streamed after the lock is released.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from lxml import etree

from . import ids
from .categories import CategoryList, default_list
from .foldertree import seed_system_folders
from .notifications import NotificationHub
from .timeutil import now

# distinguished id -> (display name, element tag, folder class, parent distinguished id)
DISTINGUISHED: dict[str, tuple[str, str, str | None, str | None]] = {
    "root": ("root", "Folder", None, None),
    "msgfolderroot": ("Top of Information Store", "Folder", "IPF.Note", "root"),
    "inbox": ("Inbox", "Folder", "IPF.Note", "msgfolderroot"),
    "outbox": ("Outbox", "Folder", "IPF.Note", "msgfolderroot"),
    "sentitems": ("Sent Items", "Folder", "IPF.Note", "msgfolderroot"),
    "deleteditems": ("Deleted Items", "Folder", "IPF.Note", "msgfolderroot"),
    "drafts": ("Drafts", "Folder", "IPF.Note", "msgfolderroot"),
    "junkemail": ("Junk Email", "Folder", "IPF.Note", "msgfolderroot"),
    "calendar": ("Calendar", "CalendarFolder", "IPF.Appointment", "msgfolderroot"),
    "contacts": ("Contacts", "ContactsFolder", "IPF.Contact", "msgfolderroot"),
    "tasks": ("Tasks", "TasksFolder", "IPF.Task", "msgfolderroot"),
}
FOLDER_TAG_BY_CLASS = {"IPF.Appointment": "CalendarFolder", "IPF.Contact": "ContactsFolder",
                       "IPF.Task": "TasksFolder"}
ITEM_CLASS_BY_TAG = {"Message": "IPM.Note", "CalendarItem": "IPM.Appointment",
                     "Contact": "IPM.Contact", "DistributionList": "IPM.DistList",
                     "Task": "IPM.Task", "PostItem": "IPM.Post"}


@dataclass
class User:
    address: str
    password: str
    display_name: str = ""
    domain: str = ""            # NTLM domain for DOMAIN\\account logins
    account: str = ""           # sAMAccountName-like login
    can_impersonate: set[str] = field(default_factory=set)  # addresses, or "*"
    delegate_for: set[str] = field(default_factory=set)     # mailboxes opened with DELEGATE

    def may_impersonate(self, address: str) -> bool:
        return "*" in self.can_impersonate or address.lower() in self.can_impersonate

    def may_open(self, address: str) -> bool:
        address = address.lower()
        return (address == self.address or self.may_impersonate(address)
                or "*" in self.delegate_for or address in self.delegate_for)


@dataclass
class App:
    """An Azure AD app registration for OAuth2 client credentials."""
    client_id: str
    client_secret: str
    tenant: str = "common"
    can_impersonate: set[str] = field(default_factory=lambda: {"*"})
    # False: tokens are issued, but Graph answers 403 (no admin consent for the permissions).
    admin_consent: bool = True
    certificate_pem: str | None = None      # for client assertions (certificate credentials)


@dataclass
class Principal:
    """Who is calling: a user, or an app with an app-only token."""
    user: User | None = None
    app: App | None = None

    @property
    def address(self) -> str | None:
        return self.user.address if self.user else None

    def may_impersonate(self, address: str) -> bool:
        if self.app is not None:
            return "*" in self.app.can_impersonate or address.lower() in self.app.can_impersonate
        return bool(self.user and self.user.may_impersonate(address))


@dataclass
class Attachment:
    id: str
    name: str
    content_type: str = "application/octet-stream"
    content: bytes | None = None               # file attachments
    item: Item | None = None                   # item attachments
    is_inline: bool = False
    is_contact_photo: bool = False
    content_id: str | None = None
    last_modified: dt.datetime = field(default_factory=now)

    @property
    def size(self) -> int:
        if self.content is not None:
            return len(self.content)
        return self.item.size if self.item else 0

    def copied(self) -> Attachment:
        """A copy with ids of its own, down through an attached item's attachments (a copy
        delivered to another mailbox must not share ids with the original)."""
        inner = None
        if self.item is not None:
            inner = copy.copy(self.item)
            inner.attachments = [a.copied() for a in self.item.attachments]
        return replace(self, id=ids.attachment_id(), item=inner)


@dataclass
class Item:
    id: str
    tag: str                                    # Message, CalendarItem, Contact, ...
    folder_id: str
    mailbox: str
    changekey: str = field(default_factory=ids.change_key)
    props: dict[str, etree._Element] = field(default_factory=dict)   # local name -> t:element
    ext: dict[str, etree._Element] = field(default_factory=dict)     # uri key -> t:ExtendedProperty
    attachments: list[Attachment] = field(default_factory=list)
    created: dt.datetime = field(default_factory=now)
    modified: dt.datetime = field(default_factory=now)
    received: dt.datetime = field(default_factory=now)
    mime: bytes | None = None
    size: int = 0
    # What the creating/updating client asked Exchange to send (tests assert on it).
    meeting_requests_sent: list[str] = field(default_factory=list)
    deleted_occurrences: set[int] = field(default_factory=set)
    # Recurring masters: instance index -> recurrence.OccurrenceException (modified occurrence).
    exceptions: dict[int, Any] = field(default_factory=dict)
    # Graph's immutable id: kept by move_item (same object), unlike `id`.
    immutable_id: str = field(default_factory=ids.immutable_id)

    def text(self, name: str) -> str | None:
        el = self.props.get(name)
        return el.text if el is not None else None

    def touch(self) -> None:
        self.changekey = ids.change_key()
        self.modified = now()

    def all_attachments(self) -> Iterator[Attachment]:
        """Its attachments and, depth first, those of the items attached to it: Exchange gives
        each its own id, which GetAttachment takes directly (RootItemId names the store item)."""
        for att in self.attachments:
            yield att
            if att.item is not None:
                yield from att.item.all_attachments()


@dataclass
class Folder:
    id: str
    mailbox: str
    display_name: str
    tag: str = "Folder"
    folder_class: str | None = "IPF.Note"
    parent_id: str | None = None
    distinguished: str | None = None
    changekey: str = field(default_factory=ids.change_key)
    hidden: bool = False        # PidTagAttributeHidden (foldertree.py)
    system: bool = False        # one of the mailbox's own folders: not deletable
    children: list[str] = field(default_factory=list)
    items: dict[str, Item] = field(default_factory=dict)    # insertion ordered
    # Change log for SyncFolderItems and Graph delta: (mailbox seq, item id, kind); paged by
    # changelog.py, which keeps each item's own changes beside it.
    log: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def unread(self) -> int:
        from .ns import parse_bool
        return sum(1 for i in self.items.values()
                   if i.tag == "Message" and not parse_bool(i.text("IsRead")))


@dataclass
class Mailbox:
    address: str
    display_name: str
    folders: dict[str, Folder] = field(default_factory=dict)
    distinguished: dict[str, str] = field(default_factory=dict)
    seq: int = 0
    # The master category list (categories.py); None: Outlook never saved one.
    category_list: CategoryList | None = field(default_factory=default_list)


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.users: dict[str, User] = {}
            self.apps: dict[str, App] = {}
            self.tokens: dict[str, Principal] = {}
            self.mailboxes: dict[str, Mailbox] = {}
            self.folders: dict[str, Folder] = {}
            self.items: dict[str, Item] = {}
            self.attachments: dict[str, tuple[Item, Attachment]] = {}
            self.by_immutable: dict[str, Item] = {}
            # Every store id an item ever had -> its immutable id (Graph delta names removed
            # items by the id the client knows).
            self.immutable_of: dict[str, str] = {}
            self.listeners: list[Any] = []   # notification hubs: callables(event dict)
            # Subscriptions + event log (notifications.py); closing the old hub ends open streams.
            old_hub: NotificationHub | None = getattr(self, "notifications", None)
            if old_hub is not None:
                old_hub.close()
            self.notifications = NotificationHub(self)

    # --- users and mailboxes -------------------------------------------------------------
    def add_user(self, address: str, password: str, display_name: str = "", domain: str = "",
                 account: str = "", can_impersonate: list[str] | None = None,
                 delegate_for: list[str] | None = None) -> User:
        with self.lock:
            address = address.lower()
            user = User(address=address, password=password,
                        display_name=display_name or address.split("@")[0].title(),
                        domain=domain, account=account or address.split("@")[0],
                        can_impersonate={a.lower() for a in can_impersonate or []},
                        delegate_for={a.lower() for a in delegate_for or []})
            self.users[address] = user
            self.ensure_mailbox(address, user.display_name)
            return user

    def find_user(self, login: str) -> User | None:
        """Resolve 'user@x', 'DOMAIN\\account' or a bare account name."""
        login = login.strip().lower()
        if login in self.users:
            return self.users[login]
        domain, _, account = login.rpartition("\\")
        for user in self.users.values():
            if user.account.lower() == account and (not domain or user.domain.lower() == domain):
                return user
        return None

    def ensure_mailbox(self, address: str, display_name: str = "") -> Mailbox:
        with self.lock:
            address = address.lower()
            mbx = self.mailboxes.get(address)
            if mbx is None:
                mbx = Mailbox(address=address, display_name=display_name or address)
                self.mailboxes[address] = mbx
                for dist, (name, tag, cls, parent) in DISTINGUISHED.items():
                    parent_id = mbx.distinguished[parent] if parent else None
                    self._new_folder(mbx, name, tag, cls, parent_id, dist)
                seed_system_folders(self, mbx)
            return mbx

    def _new_folder(self, mbx: Mailbox, name: str, tag: str, cls: str | None,
                    parent_id: str | None, distinguished: str | None = None) -> Folder:
        folder = Folder(id=ids.folder_id(), mailbox=mbx.address, display_name=name, tag=tag,
                        folder_class=cls, parent_id=parent_id, distinguished=distinguished)
        mbx.folders[folder.id] = folder
        self.folders[folder.id] = folder
        if distinguished:
            mbx.distinguished[distinguished] = folder.id
        if parent_id:
            self.folders[parent_id].children.append(folder.id)
        return folder

    def create_folder(self, parent: Folder, name: str, folder_class: str | None,
                      tag: str | None = None) -> Folder:
        mbx = self.mailboxes[parent.mailbox]
        tag = tag or FOLDER_TAG_BY_CLASS.get(folder_class or "", "Folder")
        folder = self._new_folder(mbx, name, tag, folder_class, parent.id)
        parent.changekey = ids.change_key()
        return folder

    def folder_by_distinguished(self, address: str, dist: str) -> Folder | None:
        mbx = self.mailboxes.get(address.lower())
        if mbx is None:
            return None
        fid = mbx.distinguished.get(dist)
        return self.folders.get(fid) if fid else None

    # --- items and the change log ----------------------------------------------------------
    def record(self, folder: Folder, item_id: str, kind: str) -> int:
        mbx = self.mailboxes[folder.mailbox]
        mbx.seq += 1
        folder.log.append((mbx.seq, item_id, kind))
        event = {"kind": kind, "item_id": item_id, "folder_id": folder.id,
                 "mailbox": folder.mailbox, "seq": mbx.seq}
        for listener in list(self.listeners):
            listener(event)
        self.changed.notify_all()
        return mbx.seq

    def add_item(self, folder: Folder, item: Item, new_mail: bool = False) -> Item:
        """`new_mail`: an inbound delivery (also raises NewMailEvent for subscriptions)."""
        item.folder_id = folder.id
        item.mailbox = folder.mailbox
        folder.items[item.id] = item
        self.items[item.id] = item
        self.by_immutable[item.immutable_id] = item
        self.immutable_of[item.id] = item.immutable_id
        for att in item.all_attachments():
            self.attachments[att.id] = (item, att)
        self.record(folder, item.id, "create")
        self.notifications.item_created(folder, item, new_mail)
        return item

    def remove_item(self, item: Item) -> None:
        folder = self.folders[item.folder_id]
        folder.items.pop(item.id, None)
        self.items.pop(item.id, None)
        self.by_immutable.pop(item.immutable_id, None)
        for att in item.all_attachments():
            self.attachments.pop(att.id, None)
        self.record(folder, item.id, "delete")
        self.notifications.item_deleted(folder, item)

    def move_item(self, item: Item, target: Folder) -> Item:
        """EWS ids change on move (notes §2 Sync): delete in source, create with a new id."""
        with self.notifications.moving(item):   # one MovedEvent, not Deleted + Created
            self.remove_item(item)
            item.id = ids.item_id()
            item.touch()
            self.add_item(target, item)
        return item

    def updated(self, item: Item, kind: str = "update") -> None:
        item.touch()
        self.record(self.folders[item.folder_id], item.id, kind)
        self.notifications.item_modified(self.folders[item.folder_id], item)
