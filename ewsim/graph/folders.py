"""mailFolders, contactFolders and calendars: folder JSON and lookups by id or well-known name."""

from __future__ import annotations

from typing import Any

from ..store import Folder
from .context import GraphContext, GraphResponse, check_id
from .errors import GraphError
from .odata import parse_select, project
from .router import route

# Graph's well-known mail folder names that the store has (distinguished ids).
WELL_KNOWN_MAIL = {"inbox", "sentitems", "deleteditems", "drafts", "junkemail", "outbox",
                   "msgfolderroot"}
MAIL_CLASSES = {None, "IPF.Note"}


def folder_by_ref(ctx: GraphContext, ref: str, well_known: set[str]) -> Folder:
    store = ctx.store
    name = ref.lower()
    if name in well_known:
        folder = store.folder_by_distinguished(ctx.mailbox, name)
    else:
        check_id(ref)
        folder = store.folders.get(ref)
    if folder is None or folder.mailbox != ctx.mailbox:
        raise GraphError(404, "ErrorItemNotFound")
    return folder


def mail_folder(ctx: GraphContext, ref: str) -> Folder:
    folder = folder_by_ref(ctx, ref, WELL_KNOWN_MAIL)
    if folder.folder_class not in MAIL_CLASSES:
        raise GraphError(404, "ErrorItemNotFound")
    return folder


def contact_folder(ctx: GraphContext, ref: str) -> Folder:
    folder = folder_by_ref(ctx, ref, {"contacts"})
    if folder.folder_class != "IPF.Contact":
        raise GraphError(404, "ErrorItemNotFound")
    return folder


def calendar_folder(ctx: GraphContext, ref: str | None) -> Folder:
    folder = folder_by_ref(ctx, ref or "calendar", {"calendar"})
    if folder.folder_class != "IPF.Appointment":
        raise GraphError(404, "ErrorItemNotFound")
    return folder


def _children(ctx: GraphContext, folder: Folder, classes: set[str | None]) -> list[Folder]:
    out = []
    for child_id in folder.children:
        child = ctx.store.folders[child_id]
        # Graph leaves hidden folders out of its lists (mailFolders unless includeHiddenFolders).
        if child.folder_class in classes and not child.hidden:
            out.append(child)
    return out


def mail_folder_json(ctx: GraphContext, folder: Folder) -> dict[str, Any]:
    mail_children = _children(ctx, folder, MAIL_CLASSES)
    return {"id": folder.id, "displayName": folder.display_name,
            "parentFolderId": folder.parent_id, "childFolderCount": len(mail_children),
            "unreadItemCount": folder.unread, "totalItemCount": len(folder.items),
            "sizeInBytes": sum(i.size for i in folder.items.values()), "isHidden": folder.hidden}


def contact_folder_json(ctx: GraphContext, folder: Folder) -> dict[str, Any]:
    return {"id": folder.id, "displayName": folder.display_name,
            "parentFolderId": folder.parent_id}


def calendar_json(ctx: GraphContext, folder: Folder) -> dict[str, Any]:
    owner = ctx.store.users.get(folder.mailbox)
    default = folder.distinguished == "calendar"
    return {"@odata.etag": f'W/"{folder.changekey}"', "id": folder.id,
            "name": folder.display_name, "color": "auto", "hexColor": "",
            "isDefaultCalendar": default, "changeKey": folder.changekey, "canShare": True,
            "canViewPrivateItems": True, "canEdit": True, "isRemovable": not default,
            "isTallyingResponses": True, "allowedOnlineMeetingProviders": ["teamsForBusiness"],
            "defaultOnlineMeetingProvider": "teamsForBusiness",
            "owner": {"name": owner.display_name if owner else folder.mailbox,
                      "address": folder.mailbox}}


def collection(ctx: GraphContext, fragment: str, values: list[dict[str, Any]]) -> GraphResponse:
    """A folder list: small, so one page; $top still honoured with a nextLink-free cut."""
    fields = parse_select(ctx.request.query.get("$select"))
    top = ctx.request.query.get("$top")
    if top and top.isdigit():
        values = values[:int(top)]
    return GraphResponse(200, {"@odata.context": ctx.context_url(fragment),
                               "value": [project(v, fields) for v in values]})


def entity(ctx: GraphContext, fragment: str, value: dict[str, Any]) -> GraphResponse:
    fields = parse_select(ctx.request.query.get("$select"))
    return GraphResponse(200, {"@odata.context": ctx.context_url(fragment),
                               **project(value, fields)})


# --- mailFolders ---------------------------------------------------------------------------
@route("GET", "mailFolders", "mailFolders.list")
def list_mail_folders(ctx: GraphContext) -> GraphResponse:
    root = ctx.store.folder_by_distinguished(ctx.mailbox, "msgfolderroot")
    assert root is not None
    return collection(ctx, f"users('{ctx.mailbox}')/mailFolders",
                      [mail_folder_json(ctx, f) for f in _children(ctx, root, MAIL_CLASSES)])


@route("GET", "mailFolders/{folder}", "mailFolders.get")
def get_mail_folder(ctx: GraphContext, folder: str) -> GraphResponse:
    return entity(ctx, f"users('{ctx.mailbox}')/mailFolders/$entity",
                  mail_folder_json(ctx, mail_folder(ctx, folder)))


@route("GET", "mailFolders/{folder}/childFolders", "mailFolders.children")
def list_mail_children(ctx: GraphContext, folder: str) -> GraphResponse:
    parent = mail_folder(ctx, folder)
    return collection(ctx, f"users('{ctx.mailbox}')/mailFolders('{parent.id}')/childFolders",
                      [mail_folder_json(ctx, f) for f in _children(ctx, parent, MAIL_CLASSES)])


# --- contactFolders ------------------------------------------------------------------------
@route("GET", "contactFolders", "contactFolders.list")
def list_contact_folders(ctx: GraphContext) -> GraphResponse:
    # Graph lists the folders *in* the default Contacts folder, not that folder itself.
    default = contact_folder(ctx, "contacts")
    return collection(ctx, f"users('{ctx.mailbox}')/contactFolders",
                      [contact_folder_json(ctx, f)
                       for f in _children(ctx, default, {"IPF.Contact"})])


@route("GET", "contactFolders/{folder}", "contactFolders.get")
def get_contact_folder(ctx: GraphContext, folder: str) -> GraphResponse:
    return entity(ctx, f"users('{ctx.mailbox}')/contactFolders/$entity",
                  contact_folder_json(ctx, contact_folder(ctx, folder)))


@route("GET", "contactFolders/{folder}/childFolders", "contactFolders.children")
def list_contact_children(ctx: GraphContext, folder: str) -> GraphResponse:
    parent = contact_folder(ctx, folder)
    return collection(ctx, f"users('{ctx.mailbox}')/contactFolders('{parent.id}')/childFolders",
                      [contact_folder_json(ctx, f)
                       for f in _children(ctx, parent, {"IPF.Contact"})])


# --- calendars -----------------------------------------------------------------------------
@route("GET", "calendars", "calendars.list")
def list_calendars(ctx: GraphContext) -> GraphResponse:
    mbx = ctx.store.mailboxes[ctx.mailbox]
    calendars = [f for f in mbx.folders.values()
                 if f.folder_class == "IPF.Appointment" and not f.hidden]
    return collection(ctx, f"users('{ctx.mailbox}')/calendars",
                      [calendar_json(ctx, f) for f in calendars])


@route("GET", "calendar", "calendars.default")
def get_default_calendar(ctx: GraphContext) -> GraphResponse:
    return entity(ctx, f"users('{ctx.mailbox}')/calendars/$entity",
                  calendar_json(ctx, calendar_folder(ctx, None)))


@route("GET", "calendars/{folder}", "calendars.get")
def get_calendar(ctx: GraphContext, folder: str) -> GraphResponse:
    return entity(ctx, f"users('{ctx.mailbox}')/calendars/$entity",
                  calendar_json(ctx, calendar_folder(ctx, folder)))
