"""Graph's folder lists leave hidden folders out, as Exchange Online's do: "List childFolders"
returns hidden ones only with `includeHiddenFolders=true`
(https://learn.microsoft.com/en-us/graph/api/mailfolder-list-childfolders), and a mailFolder says
so in `isHidden` (https://learn.microsoft.com/en-us/graph/api/resources/mailfolder). The hidden
system contacts folders under Contacts (Recipient Cache…) are not contact folders a client lists.
"""

from __future__ import annotations

from ..folder_helpers import hide_folder
from .client import Graph


def test_a_hidden_mail_folder_is_left_out_of_the_lists_but_served_by_id(ewsim):
    made = ewsim.control.call("POST", "folders", {"mailbox": ewsim.user, "parent": "inbox",
                                                  "name": "Tucked", "folder_class": "IPF.Note"})
    graph = Graph.connect(ewsim)
    listed = graph.get("mailFolders/inbox/childFolders").json["value"]
    assert [(f["displayName"], f["isHidden"]) for f in listed] == [("Tucked", False)]
    hide_folder(ewsim, made["id"])
    assert graph.get("mailFolders/inbox/childFolders").json["value"] == []
    assert graph.get("mailFolders/inbox").json["childFolderCount"] == 0
    assert graph.get(f"mailFolders/{made['id']}").json["isHidden"] is True


def test_the_system_folders_are_in_no_graph_list(ewsim):
    graph = Graph.connect(ewsim)
    top = {f["displayName"] for f in graph.get("mailFolders").json["value"]}
    assert {"Inbox", "Sent Items", "Deleted Items"} <= top
    assert not top & {"Conversation Action Settings", "Quick Step Settings", "Files",
                      "ExternalContacts", "PersonMetadata", "Notes", "Journal"}
    assert graph.get("contactFolders").json["value"] == []
    assert [c["name"] for c in graph.get("calendars").json["value"]] == ["Calendar"]
