"""GetUserConfiguration: the one configuration a sync server reads, the calendar folder's
"CategoryList" (the master category list, ../categories.py).

Any other configuration, or this one where Outlook never saved it, answers as Exchange does
for a configuration that does not exist: ErrorItemNotFound.
"""

from __future__ import annotations

import base64

from lxml import etree

from ..categories import CONFIGURATION_NAME, xml_data
from ..context import Context, folder_id_elements
from ..ns import M, T, mq, sub
from ..soap import MessageError, error, response_root, success
from . import operation

OP = "GetUserConfiguration"


@operation(OP)
def get_user_configuration(ctx: Context, req: etree._Element) -> etree._Element:
    root, msgs = response_root(OP)
    name_el = req.find(mq("UserConfigurationName"))
    name = name_el.get("Name", "") if name_el is not None else ""
    wanted = set((req.findtext(mq("UserConfigurationProperties")) or "").split())
    try:
        folders = folder_id_elements(name_el)
        if not folders:
            raise MessageError("ErrorFolderNotFound")
        folder = ctx.folder(folders[0])
        category_list = ctx.store.mailboxes[folder.mailbox].category_list
        if name != CONFIGURATION_NAME or folder.distinguished != "calendar" \
                or category_list is None:
            raise MessageError("ErrorItemNotFound")
    except MessageError as exc:
        error(msgs, OP, exc.code, exc.message)
        return root
    configuration = sub(success(msgs, OP), M, "UserConfiguration")
    named = sub(configuration, T, "UserConfigurationName", Name=name)
    sub(named, T, "FolderId", Id=folder.id, ChangeKey=folder.changekey)
    if wanted & {"Id", "All"}:
        sub(configuration, T, "ItemId", Id=category_list.id, ChangeKey=category_list.changekey)
    if wanted & {"XmlData", "All"}:
        sub(configuration, T, "XmlData", base64.b64encode(xml_data(category_list)).decode())
    return root
