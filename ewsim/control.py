"""Control plane: JSON over HTTP under /_control/ on the EWS port.

Lets tests and the demo act "from outside": users, inbound mail, edits made by
another client (Outlook), fault injection, request counters.
"""

from __future__ import annotations

import base64
from typing import Any

from lxml import etree

from .categories import set_categories
from .categories import summary as categories_summary
from .deliver import message_from_fields, message_from_mime
from .itemxml import apply_props, load_item
from .ns import PARSER, T, local, t_el
from .store import Folder, Item


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _folder(server: Any, mailbox: str, ref: str | None, default: str) -> Folder:
    store = server.store
    ref = ref or default
    folder = store.folders.get(ref) or store.folder_by_distinguished(mailbox, ref)
    if folder is None and mailbox.lower() in store.mailboxes:
        # Allow a display-name path like "Contacts/CRM".
        mbx = store.mailboxes[mailbox.lower()]
        folder = next((f for f in mbx.folders.values() if f.display_name == ref), None)
    if folder is None:
        raise ControlError(404, f"folder {ref!r} not found in {mailbox!r}")
    return folder


def _summary(item: Item) -> dict[str, Any]:
    return {"id": item.id, "changekey": item.changekey, "tag": item.tag,
            "folder_id": item.folder_id, "mailbox": item.mailbox,
            "subject": item.text("Subject"), "display_name": item.text("DisplayName"),
            "immutable_id": item.immutable_id,   # the id Graph clients see (IdType=ImmutableId)
            "attachments": [{"id": a.id, "name": a.name, "size": a.size}
                            for a in item.attachments],
            "meeting_requests_sent": item.meeting_requests_sent}


def _item_xml(xml: str) -> etree._Element:
    if "xmlns" not in xml.split(">", 1)[0]:
        # Convenience: allow '<t:Contact>…' without the namespace declaration.
        name = xml.strip()[1:].split(">", 1)[0].split()[0]
        xml = xml.replace(f"<{name}", f'<{name} xmlns:t="{T}"', 1)
    return etree.fromstring(xml.encode(), PARSER)


def _apply_fields(item: Item, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if value is None:
            item.props.pop(name, None)
        elif name == "Categories":
            el = t_el("Categories")
            for c in value:
                etree.SubElement(el, f"{{{T}}}String").text = c
            item.props[name] = el
        else:
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            item.props[name] = t_el(name, text)


def handle(server: Any, method: str, path: str, data: dict[str, Any]) -> Any:
    store = server.store
    parts = [p for p in path.split("/") if p][1:]   # drop "_control"
    route = "/".join(parts[:1])
    with store.lock:
        if route == "reset" and method == "POST":
            server.reset()
            return {"ok": True}
        if route == "users" and method == "POST":
            user = store.add_user(data["address"], data.get("password", "secret"),
                                  data.get("display_name", ""), data.get("domain", ""),
                                  data.get("account", ""), data.get("can_impersonate"),
                                  data.get("delegate_for"))
            return {"address": user.address}
        if route == "apps" and method == "POST":
            from .store import App
            app = App(client_id=data["client_id"], client_secret=data.get("client_secret", ""),
                      tenant=data.get("tenant", "common"),
                      can_impersonate={a.lower() for a in data.get("can_impersonate", ["*"])},
                      admin_consent=bool(data.get("admin_consent", True)),
                      certificate_pem=data.get("certificate"))
            store.apps[app.client_id] = app
            return {"client_id": app.client_id}
        if route == "folders":
            mailbox = data.get("mailbox") or ""
            if method == "POST":
                parent = _folder(server, mailbox, data.get("parent"), "msgfolderroot")
                folder = store.create_folder(parent, data["name"], data.get("folder_class",
                                                                            "IPF.Note"))
                return {"id": folder.id}
            mbx = store.mailboxes.get(mailbox.lower())
            if mbx is None:
                raise ControlError(404, "no such mailbox")
            return [{"id": f.id, "name": f.display_name, "distinguished": f.distinguished,
                     "parent_id": f.parent_id, "folder_class": f.folder_class,
                     "total": len(f.items)} for f in mbx.folders.values()]
        if route == "deliver" and method == "POST":
            mailbox = data["mailbox"]
            folder = _folder(server, mailbox, data.get("folder"), "inbox")
            if data.get("mime"):
                item = message_from_mime(base64.b64decode(data["mime"]))
            else:
                item = message_from_fields(data)
            store.add_item(folder, item, new_mail=True)
            return _summary(item)
        if route == "categories":
            # The mailbox's master category list, as Outlook would have saved it: GET reads
            # it; PUT/POST {mailbox, categories: [{name, color}] or null} replaces or removes it.
            mbx = store.mailboxes.get(str(data.get("mailbox", "")).lower())
            if mbx is None:
                raise ControlError(404, "no such mailbox")
            if method in ("PUT", "POST"):
                set_categories(mbx, data.get("categories"))
            return {"mailbox": mbx.address, "categories": categories_summary(mbx.category_list)}
        if route == "graph":
            from .graph.control import handle as graph_handle
            return graph_handle(server, method, parts[1:], data)
        if route == "items":
            return _items(server, method, parts[1] if len(parts) > 1 else None, data)
        if route == "faults":
            if method == "POST":
                params = {k: v for k, v in data.items() if k not in ("kind", "operation",
                                                                     "count")}
                try:
                    server.faults.add(data["kind"], data.get("operation", "*"),
                                      int(data.get("count", 1)), **params)
                except ValueError as exc:
                    raise ControlError(400, str(exc)) from exc
                return server.faults.list()
            if method == "DELETE":
                server.faults.clear()
            return server.faults.list()
        if route == "ids-asked":
            return dict(server.ids_asked)
        if route == "counters":
            if method in ("DELETE", "POST"):
                server.counters.clear()
                server.ids_asked.clear()
                server.graph.clear_counters()
                return {}
            return dict(server.counters)
        if route == "settings":
            if method in ("POST", "PATCH") and "notification_minute_seconds" in data:
                # Length of a "minute" for notification timeouts (tests shorten it).
                value = float(data["notification_minute_seconds"])
                if value <= 0:
                    raise ControlError(400, "notification_minute_seconds must be > 0")
                server.notification_minute_seconds = value
            if method in ("POST", "PATCH") and "strict_affinity" in data:
                server.affinity.strict = bool(data["strict_affinity"])   # see affinity.py
            return {"notification_minute_seconds": server.notification_minute_seconds,
                    "strict_affinity": server.affinity.strict}
        if route == "affinity":
            if method == "DELETE":
                server.affinity.clear()
            return {"strict": server.affinity.strict, "requests": server.affinity.requests()}
        if route == "sent":
            return list(server.sent_log)
        if route == "validation-errors":
            if method == "DELETE":
                server.validation_errors.clear()
                return []
            return list(server.validation_errors)
    raise ControlError(404, f"unknown control endpoint {method} {path}")


def _items(server: Any, method: str, item_id: str | None, data: dict[str, Any]) -> Any:
    """Create/edit/delete items as another client would (e.g. a user in Outlook)."""
    store = server.store
    if item_id is None and method == "POST":
        mailbox = data["mailbox"]
        if data.get("xml"):
            spec = _item_xml(data["xml"])
            tag = local(spec)
        else:
            tag = data.get("tag", "Message")
            spec = t_el(tag)
        default = {"CalendarItem": "calendar", "Contact": "contacts"}.get(tag, "inbox")
        folder = _folder(server, mailbox, data.get("folder"), default)
        item = load_item(spec, folder.id, folder.mailbox)
        _apply_fields(item, data.get("fields", {}))
        from .operations.items import prepare_new
        prepare_new(item, folder.mailbox)
        store.add_item(folder, item)
        return _summary(item)
    if item_id is None:
        mailbox = data.get("mailbox", "")
        folder = _folder(server, mailbox, data.get("folder"), "inbox")
        return [_summary(i) for i in folder.items.values()]
    item = store.items.get(item_id) or store.by_immutable.get(item_id)
    if item is None:
        raise ControlError(404, "no such item")
    if method == "GET":
        out = _summary(item)
        out["props"] = {k: (v.text if not len(v) else etree.tostring(v).decode())
                        for k, v in item.props.items()}
        return out
    if method == "DELETE":
        store.remove_item(item)
        return {"ok": True}
    if method in ("PATCH", "PUT"):
        if data.get("xml"):
            apply_props(item, _item_xml(data["xml"]))
        fields = data.get("fields", {})
        _apply_fields(item, fields)
        kind = "read" if set(fields) == {"IsRead"} and not data.get("xml") else "update"
        if data.get("move_to"):
            store.move_item(item, _folder(server, item.mailbox, data["move_to"], "inbox"))
        else:
            store.updated(item, kind)
        return _summary(item)
    raise ControlError(405, "method not allowed")
