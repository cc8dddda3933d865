"""DeleteFolder and UpdateFolder: changing the folder tree itself.

DeleteFolder (learn.microsoft.com/exchange/client-developer/web-service-reference/
deletefolder-operation): HardDelete removes the folder, its subfolders and their items;
SoftDelete does the same here (the dumpster is not simulated); MoveToDeletedItems moves the
folder, with what it holds and its id, under Deleted Items (a folder already in Deleted Items
is removed for good, as DeleteItem does with items there). Distinguished folders cannot be
deleted (ErrorDeleteDistinguishedFolder), nor can the mailbox's other system folders
(ErrorCannotDeleteObject).

UpdateFolder (…/updatefolder-operation): SetFolderField of DisplayName (a sibling of the same
name: ErrorFolderExists), FolderClass and PidTagAttributeHidden; DeleteFolderField of
PermissionSet (what exchangelib's full `save()` sends for a folder without permissions) is a
no-op, as permissions are not simulated. Anything else is ErrorInvalidPropertySet.
"""

from __future__ import annotations

from lxml import etree

from .. import ids
from ..context import Context, folder_id_elements
from ..foldertree import HIDDEN_KEY, inside, subtree
from ..itemxml import ext_key, field_element
from ..ns import M, local, mq, parse_bool, sub, t_el, tq
from ..soap import MessageError, error, response_root, success
from ..store import FOLDER_TAG_BY_CLASS, Folder, Store
from . import operation

FOLDER_EXISTS = "A folder with the specified name already exists."


def _check_deletable(folder: Folder) -> None:
    if folder.distinguished:
        raise MessageError("ErrorDeleteDistinguishedFolder",
                           "Distinguished folders cannot be deleted.")
    if folder.system:
        raise MessageError("ErrorCannotDeleteObject", "The folder cannot be deleted.")


def _detach(store: Store, folder: Folder) -> None:
    if folder.parent_id:
        parent = store.folders[folder.parent_id]
        parent.children.remove(folder.id)
        parent.changekey = ids.change_key()


def remove_folder(store: Store, folder: Folder) -> None:
    """Remove the folder and everything below it; each item's deletion is logged and notified
    as a DeleteItem's would be, so sync states and subscriptions see the items go."""
    _detach(store, folder)
    mbx = store.mailboxes[folder.mailbox]
    for gone in subtree(store, folder):
        for item in list(gone.items.values()):
            store.remove_item(item)
        store.folders.pop(gone.id, None)
        mbx.folders.pop(gone.id, None)


def move_folder(store: Store, folder: Folder, target: Folder) -> None:
    """Folder ids survive a move (unlike item ids)."""
    _detach(store, folder)
    folder.parent_id = target.id
    target.children.append(folder.id)
    target.changekey = folder.changekey = ids.change_key()


@operation("DeleteFolder")
def delete_folder(ctx: Context, req: etree._Element) -> etree._Element:
    delete_type = req.get("DeleteType", "HardDelete")
    root, msgs = response_root("DeleteFolder")
    store = ctx.store
    for fid in folder_id_elements(req.find(mq("FolderIds"))):
        try:
            folder = ctx.folder(fid)
            _check_deletable(folder)
            trash = store.folder_by_distinguished(folder.mailbox, "deleteditems")
            if delete_type == "MoveToDeletedItems" and trash is not None \
                    and not inside(store, folder, trash):
                move_folder(store, folder, trash)
            else:
                remove_folder(store, folder)
        except MessageError as exc:
            error(msgs, "DeleteFolder", exc.code, exc.message)
            continue
        success(msgs, "DeleteFolder")
    return root


def _new_value(update: etree._Element, name: str) -> etree._Element | None:
    """The value element inside a SetFolderField's t:Folder (or CalendarFolder…)."""
    for holder in update:
        if isinstance(holder.tag, str) and local(holder).endswith("Folder"):
            return holder.find(tq(name))
    return None


def _rename(store: Store, folder: Folder, name: str) -> None:
    parent = store.folders.get(folder.parent_id or "")
    if parent is not None and any(
            store.folders[c].display_name.lower() == name.lower()
            for c in parent.children if c != folder.id):
        raise MessageError("ErrorFolderExists", FOLDER_EXISTS)
    folder.display_name = name


def _apply(store: Store, folder: Folder, update: etree._Element) -> None:
    kind = local(update)
    path = next((c for c in update if isinstance(c.tag, str)
                 and local(c) in ("FieldURI", "ExtendedFieldURI", "IndexedFieldURI")), None)
    if path is None:
        raise MessageError("ErrorInvalidPropertySet")
    if local(path) == "ExtendedFieldURI":
        if ext_key(path) != HIDDEN_KEY:
            raise MessageError("ErrorInvalidPropertySet",
                               "Only PidTagAttributeHidden is simulated on folders.")
        if kind == "DeleteFolderField":
            folder.hidden = False
            return
        holder = next((c for c in update if isinstance(c.tag, str) and c is not path), None)
        prop = holder.find(tq("ExtendedProperty")) if holder is not None else None
        folder.hidden = parse_bool(prop.findtext(tq("Value")) if prop is not None else None)
        return
    name = field_element(path.get("FieldURI", ""))
    if kind == "DeleteFolderField" and name == "PermissionSet":
        return
    if kind == "SetFolderField" and name in ("DisplayName", "FolderClass"):
        value = _new_value(update, name)
        if value is None or not (value.text or "").strip():
            raise MessageError("ErrorInvalidPropertySet", f"{name} needs a value.")
        if name == "DisplayName":
            _rename(store, folder, value.text or "")
        else:
            folder.folder_class = value.text
            if folder.tag != "SearchFolder":
                base = ".".join((value.text or "").split(".")[:2])
                folder.tag = FOLDER_TAG_BY_CLASS.get(base, "Folder")
        return
    raise MessageError("ErrorInvalidPropertySet", f"Updating {name} is not simulated.")


@operation("UpdateFolder")
def update_folder(ctx: Context, req: etree._Element) -> etree._Element:
    root, msgs = response_root("UpdateFolder")
    changes = req.find(mq("FolderChanges"))
    for change in changes if changes is not None else []:
        if not isinstance(change.tag, str):
            continue
        try:
            folder = ctx.folder(folder_id_elements(change)[0])
            updates = change.find(tq("Updates"))
            before = (folder.display_name, folder.folder_class, folder.tag, folder.hidden)
            try:
                for update in updates if updates is not None else []:
                    if isinstance(update.tag, str):
                        _apply(ctx.store, folder, update)
            except MessageError:
                # A change applies whole or not at all.
                (folder.display_name, folder.folder_class, folder.tag,
                 folder.hidden) = before
                raise
            folder.changekey = ids.change_key()
        except MessageError as exc:
            error(msgs, "UpdateFolder", exc.code, exc.message)
            sub(msgs[-1], M, "Folders")
            continue
        msg = success(msgs, "UpdateFolder")
        el = t_el(folder.tag)
        etree.SubElement(el, tq("FolderId"), Id=folder.id, ChangeKey=folder.changekey)
        sub(msg, M, "Folders").append(el)
    return root
