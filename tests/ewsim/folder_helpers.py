"""Helpers for the folder tests: a FindFolder that reads PidTagAttributeHidden, and an
UpdateFolder that sets it (both as Exchange serves them; exchangelib has neither)."""

from __future__ import annotations

from typing import Any

import requests
from exchangelib import ExtendedProperty, Folder
from exchangelib.fields import ExtendedPropertyField, FieldPath
from exchangelib.services import FindFolder
from lxml import etree

from ewsim.ns import M, S, T
from ewsim.testing import SimHandle

NS_T = "{http://schemas.microsoft.com/exchange/services/2006/types}"


class AttributeHidden(ExtendedProperty):
    property_tag = 0x10F4
    property_type = "Boolean"


HIDDEN = ExtendedPropertyField("attribute_hidden", value_cls=AttributeHidden)
FIELDS = {FieldPath(field=Folder.get_field_by_fieldname(name))
          for name in ("name", "folder_class", "parent_folder_id")} | {FieldPath(field=HIDDEN)}


class RawFindFolder(FindFolder):
    """FindFolder answering with the XML: exchangelib's own refuses extended properties in
    FindFolder, which Exchange serves (FolderShape AdditionalProperties)."""

    def find(self, parent: Any, depth: str) -> list[Any]:
        return list(self._paged_call(payload_func=self.get_payload, max_items=None,
                                     folders=[parent], additional_fields=FIELDS,
                                     restriction=None, shape="IdOnly", depth=depth,
                                     page_size=100, offset=0))


def tree(account: Any, parent: Any, depth: str = "Shallow") -> dict[str, dict[str, Any]]:
    """Name -> {element, class, hidden} of the folders below `parent`."""
    out = {}
    for element in RawFindFolder(account=account).find(parent, depth):
        out[element.findtext(f"{NS_T}DisplayName")] = {
            "element": element.tag.rsplit("}", 1)[-1],
            "class": element.findtext(f"{NS_T}FolderClass"),
            "hidden": bool(HIDDEN.from_xml(element, account=None))}
    return out


def hide_folder(sim: SimHandle, folder_id: str, hidden: bool = True) -> etree._Element:
    """UpdateFolder setting PidTagAttributeHidden, as raw SOAP (exchangelib can only set
    extended properties registered on its Folder class, process-wide)."""
    body = (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}" xmlns:m="{M}" '
            f'xmlns:t="{T}"><s:Header><t:RequestServerVersion Version="Exchange2016"/>'
            f'</s:Header><s:Body><m:UpdateFolder><m:FolderChanges><t:FolderChange>'
            f'<t:FolderId Id="{folder_id}"/><t:Updates><t:SetFolderField>'
            f'<t:ExtendedFieldURI PropertyTag="0x10F4" PropertyType="Boolean"/><t:Folder>'
            f'<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x10F4" '
            f'PropertyType="Boolean"/><t:Value>{str(hidden).lower()}</t:Value>'
            f'</t:ExtendedProperty></t:Folder></t:SetFolderField></t:Updates>'
            f'</t:FolderChange></m:FolderChanges></m:UpdateFolder></s:Body></s:Envelope>')
    resp = requests.post(sim.url, data=body.encode(), auth=(sim.user, sim.password),
                         headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=10)
    assert resp.status_code == 200
    return etree.fromstring(resp.content).find(f".//{{{M}}}UpdateFolderResponseMessage")
