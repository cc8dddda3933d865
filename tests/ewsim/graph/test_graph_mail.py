"""Mail through Graph: delta per folder (with the receivedDateTime filter), reads with
attachments expanded, raw attachment bytes streamed from /$value, MIME, drafts, edits."""

from __future__ import annotations

import base64
import email
import email.policy
from email.message import EmailMessage

from .client import STAMP, Graph, quote


def _deliver(ewsim, subject: str, **fields):
    return ewsim.control.deliver("alice@example.com", subject=subject,
                                 **{"from": "Petr <petr@stavby.cz>", "to": "alice@example.com",
                                    "body": "Hello", **fields})


def test_messages_delta_pages_reports_read_changes_and_moves_out(ewsim):
    graph = Graph.connect(ewsim)
    delivered = [_deliver(ewsim, f"M{n}") for n in range(3)]
    values, delta_link = graph.delta_round("mailFolders/inbox/messages/delta?$select=subject,"
                                           "isRead,from", 2)
    assert sorted(v["subject"] for v in values) == ["M0", "M1", "M2"]
    assert values[0]["from"]["emailAddress"] == {"name": "Petr", "address": "petr@stavby.cz"}
    assert set(values[0]) == {"@odata.etag", "id", "subject", "isRead", "from"}
    ewsim.control.update_item(delivered[0]["id"], IsRead=True)
    ewsim.control.move_item(delivered[1]["id"], "deleteditems")
    values, delta_link = graph.delta_round(delta_link)
    by_id = {v["id"]: v for v in values}
    assert by_id[delivered[0]["immutable_id"]]["isRead"] is True
    assert by_id[delivered[1]["immutable_id"]]["@removed"] == {"reason": "deleted"}
    # The moved message keeps its immutable id in Deleted Items.
    trash_values, _ = graph.delta_round("mailFolders/deleteditems/messages/delta")
    assert [v["id"] for v in trash_values] == [delivered[1]["immutable_id"]]


def test_messages_delta_received_filter_is_kept_in_the_links(ewsim):
    graph = Graph.connect(ewsim)
    _deliver(ewsim, "old", received="2024-01-05T10:00:00Z")
    _deliver(ewsim, "new", received="2025-03-01T10:00:00Z")
    _deliver(ewsim, "newer", received="2025-04-01T10:00:00Z")
    since = quote("receivedDateTime ge 2025-02-01T00:00:00Z")
    values, delta_link = graph.delta_round(f"mailFolders/inbox/messages/delta?$filter={since}", 1)
    assert sorted(v["subject"] for v in values) == ["new", "newer"]
    _deliver(ewsim, "older", received="2023-01-01T10:00:00Z")
    _deliver(ewsim, "latest", received="2025-05-01T10:00:00Z")
    values, _ = graph.delta_round(delta_link)
    assert [v["subject"] for v in values] == ["latest"]
    bad = graph.get("mailFolders/inbox/messages/delta?$filter=" + quote("subject eq 'x'"))
    assert bad.status == 400


def test_message_with_attachments_expanded_without_content(ewsim):
    graph = Graph.connect(ewsim)
    made = _deliver(ewsim, "With files", attachments=[
        {"name": "a.pdf", "content_type": "application/pdf", "content": "PDFDATA"},
        {"name": "big.bin", "size": 300_000}])
    expand = quote("attachments($select=id,name,contentType,size,isInline)")
    answer = graph.get(f"messages/{made['immutable_id']}?$expand={expand}")
    assert answer.status == 200
    message = answer.json
    assert message["hasAttachments"] is True
    names = [(a["name"], a["size"], a["@odata.type"]) for a in message["attachments"]]
    assert names == [("a.pdf", 7, "#microsoft.graph.fileAttachment"),
                     ("big.bin", 300_000, "#microsoft.graph.fileAttachment")]
    assert all("contentBytes" not in a for a in message["attachments"])
    full = graph.get(f"messages/{made['immutable_id']}/attachments").json["value"]
    assert base64.b64decode(full[0]["contentBytes"]) == b"PDFDATA"


def test_delta_lists_attachment_sizes_and_a_batched_get_brings_their_contents(ewsim):
    # What the e-mail import asks: the delta with each message's attachments (id and size
    # only, kept in the round's links), then the small ones' messages with their contents,
    # one `$batch` operation each.
    graph = Graph.connect(ewsim)
    _deliver(ewsim, "Plain")
    made = _deliver(ewsim, "Files", attachments=[
        {"name": "a.pdf", "content_type": "application/pdf", "content": "PDFDATA"},
        {"name": "big.bin", "size": 300_000}])
    listed = quote("attachments($select=id,size)")
    values, delta_link = graph.delta_round(
        f"mailFolders/inbox/messages/delta?$select=id,changeKey&$expand={listed}", 1)
    by_id = {v["id"]: v for v in values}
    assert by_id[made["immutable_id"]]["attachments"] == [
        {"@odata.type": "#microsoft.graph.fileAttachment", "id": a["id"], "size": size}
        for a, size in zip(made["attachments"], (7, 300_000), strict=True)]
    assert [v["attachments"] for v in values if v["id"] != made["immutable_id"]] == [[]]
    ewsim.control.update_item(made["id"], IsRead=True)
    again, _ = graph.delta_round(delta_link)
    assert [len(v["attachments"]) for v in again] == [2]
    expand = "attachments," + f"singleValueExtendedProperties($filter=id eq '{STAMP}')"
    answer = graph.post("/$batch", {"requests": [
        {"id": "1", "method": "GET", "url": f"/users/alice@example.com/messages/"
                                            f"{made['immutable_id']}?$select=id,subject"
                                            f"&$expand={quote(expand)}"}]})
    (response,) = answer.json["responses"]
    assert response["status"] == 200 and response["body"]["subject"] == "Files"
    contents = [base64.b64decode(a["contentBytes"]) for a in response["body"]["attachments"]]
    assert contents[0] == b"PDFDATA" and len(contents[1]) == 300_000
    assert ewsim.control.graph_stats()["requests"].get("attachments.get") is None


def test_attachment_value_streams_the_raw_bytes(ewsim):
    graph = Graph.connect(ewsim)
    made = _deliver(ewsim, "Big", attachments=[{"name": "big.bin", "size": 1_000_003}])
    att_id = made["attachments"][0]["id"]
    answer = graph.get(f"messages/{made['immutable_id']}/attachments/{att_id}/$value")
    assert answer.status == 200
    assert int(answer.headers["Content-Length"]) == 1_000_003
    assert answer.raw == (b"ewsim-attachment" * 62501)[:1_000_003]
    missing = graph.get(f"messages/{made['immutable_id']}/attachments/AAMkAt{'x' * 30}/$value")
    assert missing.status == 404


def test_item_attachment_value_is_the_attached_mime_and_message_value_is_mime(ewsim):
    graph = Graph.connect(ewsim)
    inner = EmailMessage()
    inner["Subject"] = "Forwarded"
    inner["From"] = "eva@acme.cz"
    inner.set_content("inner body")
    outer = EmailMessage()
    outer["Subject"] = "Outer"
    outer["From"] = "petr@stavby.cz"
    outer["To"] = "alice@example.com"
    outer.set_content("see attached")
    outer.add_attachment(inner)
    made = ewsim.control.deliver("alice@example.com", mime=outer.as_bytes())
    attachments = graph.get(f"messages/{made['immutable_id']}/attachments").json["value"]
    assert attachments[0]["@odata.type"] == "#microsoft.graph.itemAttachment"
    raw = graph.get(f"messages/{made['immutable_id']}/attachments/{attachments[0]['id']}"
                    f"/$value").raw
    assert email.message_from_bytes(raw, policy=email.policy.default)["Subject"] == "Forwarded"
    whole = graph.get(f"messages/{made['immutable_id']}/$value").raw
    assert whole == outer.as_bytes()
    composed = graph.get(f"messages/{_deliver(ewsim, 'Plain')['immutable_id']}/$value").raw
    parsed = email.message_from_bytes(composed, policy=email.policy.default)
    assert parsed["Subject"] == "Plain" and parsed.get_content().strip() == "Hello"


def test_patch_read_flag_and_categories_and_stamp_filter(ewsim):
    graph = Graph.connect(ewsim)
    made = _deliver(ewsim, "Tag me")
    patched = graph.patch(f"messages/{made['immutable_id']}", {
        "isRead": True, "categories": ["CRM"],
        "singleValueExtendedProperties": [{"id": STAMP, "value": "mail-1"}]})
    assert patched.status == 200
    assert patched.json["isRead"] is True and patched.json["categories"] == ["CRM"]
    flt = quote(f"singleValueExtendedProperties/any(p: p/id eq '{STAMP}' and p/value eq 'mail-1')")
    found = graph.get(f"mailFolders/inbox/messages?$filter={flt}&$select=subject").json["value"]
    assert [m["subject"] for m in found] == ["Tag me"]
    refused = graph.patch(f"messages/{made['immutable_id']}",
                          {"toRecipients": [{"emailAddress": {"address": "x@y.cz"}}]})
    assert refused.status == 400     # recipients of a received message cannot change


def test_draft_is_created_in_drafts_and_nothing_is_sent(ewsim):
    graph = Graph.connect(ewsim)
    answer = graph.post("messages", {"subject": "Draft", "body": {"contentType": "html",
                                                                  "content": "<p>Hi</p>"},
                                     "toRecipients": [{"emailAddress": {"address": "b@x.cz"}}]})
    assert answer.status == 201
    draft = answer.json
    assert draft["isDraft"] is True and draft["body"]["contentType"] == "html"
    drafts = graph.get("mailFolders/drafts").json
    assert draft["parentFolderId"] == drafts["id"] and drafts["totalItemCount"] == 1
    assert ewsim.control.sent() == []


def test_mail_folders_are_mail_only_and_children_listed(ewsim):
    graph = Graph.connect(ewsim)
    names = {f["displayName"] for f in graph.get("mailFolders").json["value"]}
    assert {"Inbox", "Sent Items", "Deleted Items", "Drafts"} <= names
    assert not names & {"Calendar", "Contacts", "Tasks"}
    sub = ewsim.control.call("POST", "folders", {"mailbox": "alice@example.com",
                                                 "parent": "inbox", "name": "Projects"})
    children = graph.get("mailFolders/inbox/childFolders").json["value"]
    assert [(c["id"], c["displayName"]) for c in children] == [(sub["id"], "Projects")]
    assert graph.get("mailFolders/inbox").json["childFolderCount"] == 1
    assert graph.get("mailFolders/calendar").status == 400     # not a well-known mail name


def test_default_ids_change_on_move_and_immutable_ids_do_not(ewsim):
    immutable = Graph.connect(ewsim)
    default = Graph(ewsim, immutable.access_token, prefer=[])
    made = _deliver(ewsim, "Moving")
    assert default.get(f"messages/{made['id']}").json["id"] == made["id"]
    answer = immutable.get(f"messages/{made['id']}")
    assert answer.json["id"] == made["immutable_id"]
    assert 'IdType="ImmutableId"' in answer.headers["Preference-Applied"]
    moved = ewsim.control.move_item(made["id"], "deleteditems")
    assert moved["id"] != made["id"] and moved["immutable_id"] == made["immutable_id"]
    assert default.get(f"messages/{made['id']}").status == 404
    assert default.get(f"messages/{moved['id']}").json["id"] == moved["id"]
    assert immutable.get(f"messages/{made['immutable_id']}").json["subject"] == "Moving"
