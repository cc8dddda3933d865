"""GetFolder, FindFolder (Shallow/Deep) and CreateFolder."""

from __future__ import annotations

from lxml import etree

from .. import schema
from ..context import Context, folder_id_elements
from ..folder_restrictions import folder_matches
from ..foldertree import extended_properties, inherited_class
from ..itemxml import Shape
from ..ns import M, T, local, mq, sub, t_el, tq
from ..soap import MessageError, error, response_root, success
from ..store import Folder, Store
from . import operation


def render_folder(store: Store, folder: Folder, shape: Shape) -> etree._Element:
    info = schema.type_info(schema.FOLDER_TYPES.get(folder.tag, "FolderType"))
    el = t_el(folder.tag)
    etree.SubElement(el, tq("FolderId"), Id=folder.id, ChangeKey=folder.changekey)
    # The root's parent is itself: exchangelib treats that as "no parent" (notes §3.4).
    parent = store.folders.get(folder.parent_id or folder.id, folder)
    values: list[tuple[str, str | None]] = [
        ("FolderClass", folder.folder_class),
        ("DisplayName", folder.display_name),
        ("TotalCount", str(len(folder.items))),
        ("ChildFolderCount", str(len(folder.children))),
    ]
    if shape.wants("ParentFolderId") or True:
        etree.SubElement(el, tq("ParentFolderId"), Id=parent.id, ChangeKey=parent.changekey)
    for name, value in values:
        if value is not None and name in info.order:
            sub(el, T, name, value)
    if folder.distinguished and shape.wants("DistinguishedFolderId"):
        sub(el, T, "DistinguishedFolderId", folder.distinguished)
    if "UnreadCount" in info.order:
        sub(el, T, "UnreadCount", str(folder.unread))
    el.extend(extended_properties(folder, shape.ext))
    children = sorted(el, key=lambda c: info.order.get(local(c), 10_000))
    el.extend(children)
    return el


@operation("GetFolder")
def get_folder(ctx: Context, req: etree._Element) -> etree._Element:
    shape = Shape.parse(req.find(mq("FolderShape")))
    root, msgs = response_root("GetFolder")
    for fid in folder_id_elements(req.find(mq("FolderIds"))):
        try:
            folder = ctx.folder(fid)
        except MessageError as exc:
            error(msgs, "GetFolder", exc.code, exc.message)
            continue
        msg = success(msgs, "GetFolder")
        sub(msg, M, "Folders").append(render_folder(ctx.store, folder, shape))
    return root


def _walk(store: Store, folder: Folder, deep: bool) -> list[Folder]:
    out: list[Folder] = []
    for cid in folder.children:
        child = store.folders[cid]
        out.append(child)
        if deep:
            out.extend(_walk(store, child, deep))
    return out


@operation("FindFolder")
def find_folder(ctx: Context, req: etree._Element) -> etree._Element:
    shape = Shape.parse(req.find(mq("FolderShape")))
    deep = req.get("Traversal", "Shallow") == "Deep"
    view = req.find(mq("IndexedPageFolderView"))
    restriction = req.find(mq("Restriction"))
    root, msgs = response_root("FindFolder")
    for fid in folder_id_elements(req.find(mq("ParentFolderIds"))):
        try:
            parent = ctx.folder(fid)
        except MessageError as exc:
            error(msgs, "FindFolder", exc.code, exc.message)
            continue
        found = _walk(ctx.store, parent, deep)
        if restriction is not None:
            found = [f for f in found if folder_matches(f, restriction)]
        offset, limit = 0, len(found)
        if view is not None:
            offset = int(view.get("Offset", "0"))
            limit = int(view.get("MaxEntriesReturned", str(len(found))))
            if view.get("BasePoint") == "End":
                offset = max(0, len(found) - offset - limit)
        page = found[offset:offset + limit]
        msg = success(msgs, "FindFolder")
        rf = sub(msg, M, "RootFolder", IndexedPagingOffset=str(offset + len(page)),
                 TotalItemsInView=str(len(found)),
                 IncludesLastItemInRange="true" if offset + len(page) >= len(found) else "false")
        folders = sub(rf, T, "Folders")
        for f in page:
            folders.append(render_folder(ctx.store, f, shape))
    return root


@operation("CreateFolder")
def create_folder(ctx: Context, req: etree._Element) -> etree._Element:
    root, msgs = response_root("CreateFolder")
    parent_el = folder_id_elements(req.find(mq("ParentFolderId")))
    for spec in req.find(mq("Folders")) if req.find(mq("Folders")) is not None else []:
        try:
            parent = ctx.folder(parent_el[0])
            name = spec.findtext(tq("DisplayName")) or "New Folder"
            if any(ctx.store.folders[c].display_name.lower() == name.lower()
                   for c in parent.children):
                raise MessageError("ErrorFolderExists",
                                   "A folder with the specified name already exists.")
            cls = spec.findtext(tq("FolderClass"))
            tag = local(spec) if local(spec) != "Folder" else None
            if cls is None:
                cls = {"CalendarFolder": "IPF.Appointment", "ContactsFolder": "IPF.Contact",
                       "TasksFolder": "IPF.Task"}.get(local(spec)) or inherited_class(parent)
            folder = ctx.store.create_folder(parent, name, cls, tag)
        except MessageError as exc:
            error(msgs, "CreateFolder", exc.code, exc.message)
            continue
        msg = success(msgs, "CreateFolder")
        el = t_el(folder.tag)
        etree.SubElement(el, tq("FolderId"), Id=folder.id, ChangeKey=folder.changekey)
        sub(msg, M, "Folders").append(el)
    return root
