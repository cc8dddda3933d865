"""Contacts through Graph: CRUD on the shared store (EWS sees the same contact), the
identity stamp, per-folder delta with paging and removals, expired delta tokens, photos."""

from __future__ import annotations

from .client import STAMP, Graph, quote

JANA = {"givenName": "Jana", "surname": "Nováková", "companyName": "ACME s.r.o.",
        "emailAddresses": [{"address": "jana@acme.cz", "name": "Jana Nováková"}],
        "businessPhones": ["+420 111 222 333"], "mobilePhone": "+420 777 888 999",
        "homeAddress": {"street": "Hlavní 1", "city": "Brno", "postalCode": "60200",
                        "countryOrRegion": "CZ"},
        "categories": ["Hotline"], "personalNotes": "VIP",
        "singleValueExtendedProperties": [{"id": STAMP, "value": "crm-1"}]}


def test_created_contact_is_read_back_and_seen_by_ews(ewsim):
    graph = Graph.connect(ewsim)
    created = graph.post("contacts", JANA)
    assert created.status == 201
    contact = created.json
    assert contact["displayName"] == "Jana Nováková"     # composed by the server
    assert contact["emailAddresses"] == [{"name": "Jana Nováková", "address": "jana@acme.cz"}]
    assert contact["homeAddress"]["city"] == "Brno"
    assert contact["mobilePhone"] == "+420 777 888 999"
    assert contact["@odata.etag"] == f'W/"{contact["changeKey"]}"'
    again = graph.get(f"contacts/{contact['id']}?$select=givenName,categories")
    assert set(again.json) == {"@odata.context", "@odata.etag", "id", "givenName",
                               "categories"}
    # The EWS side reads the same item (immutable id -> store id through the control plane).
    store_item = ewsim.server.store.by_immutable[contact["id"]]
    seen = ewsim.control.get_item(store_item.id)
    assert seen["props"]["GivenName"] == "Jana"
    assert seen["props"]["CompanyName"] == "ACME s.r.o."


def test_contact_made_by_another_client_is_served_by_graph(ewsim):
    graph = Graph.connect(ewsim)
    made = ewsim.control.create_item("alice@example.com", "contacts", tag="Contact",
                                     GivenName="Petr", Surname="Svoboda", DisplayName="P. S.")
    answer = graph.get(f"contacts/{made['id']}")   # store ids are accepted too
    assert answer.status == 200
    assert answer.json["givenName"] == "Petr" and answer.json["displayName"] == "P. S."


def test_patch_changes_listed_properties_only_and_null_clears(ewsim):
    graph = Graph.connect(ewsim)
    contact = graph.post("contacts", JANA).json
    patched = graph.patch(f"contacts/{contact['id']}",
                          {"jobTitle": "CEO", "mobilePhone": None, "businessPhones": []})
    assert patched.status == 200
    body = patched.json
    assert body["jobTitle"] == "CEO" and body["mobilePhone"] is None
    assert body["businessPhones"] == [] and body["companyName"] == "ACME s.r.o."
    assert body["changeKey"] != contact["changeKey"]


def test_if_match_with_a_stale_etag_is_412_and_changes_nothing(ewsim):
    graph = Graph.connect(ewsim)
    contact = graph.post("contacts", JANA).json
    graph.patch(f"contacts/{contact['id']}", {"jobTitle": "CEO"})
    stale = graph.patch(f"contacts/{contact['id']}", {"jobTitle": "CTO"},
                        headers={"If-Match": contact["@odata.etag"]})
    assert stale.status == 412 and stale.code == "ErrorIrresolvableConflict"
    assert graph.get(f"contacts/{contact['id']}").json["jobTitle"] == "CEO"


def test_unknown_property_is_400_and_creates_nothing(ewsim):
    graph = Graph.connect(ewsim)
    answer = graph.post("contacts", {"givenName": "X", "favouriteColour": "blue"})
    assert answer.status == 400 and answer.code == "ErrorInvalidProperty"
    assert graph.get("contacts").json["value"] == []


def test_delete_moves_to_deleted_items_and_keeps_the_immutable_id(ewsim):
    graph = Graph.connect(ewsim)
    contact = graph.post("contacts", JANA).json
    assert graph.delete(f"contacts/{contact['id']}").status == 204
    trash = graph.get("mailFolders/deleteditems").json
    assert trash["totalItemCount"] == 1
    moved = graph.get(f"contacts/{contact['id']}").json
    assert moved["parentFolderId"] == trash["id"]
    # Deleted again from Deleted Items: gone for good.
    assert graph.delete(f"contacts/{contact['id']}").status == 204
    gone = graph.get(f"contacts/{contact['id']}")
    assert gone.status == 404 and gone.code == "ErrorItemNotFound"


def test_stamp_filter_finds_the_item_and_expand_returns_the_stamp(ewsim):
    graph = Graph.connect(ewsim)
    graph.post("contacts", JANA)
    graph.post("contacts", {**JANA, "givenName": "Other",
                            "singleValueExtendedProperties": [{"id": STAMP, "value": "crm-2"}]})
    flt = quote(f"singleValueExtendedProperties/Any(ep: ep/id eq '{STAMP}' and "
                f"ep/value eq 'crm-2')")
    expand = quote(f"singleValueExtendedProperties($filter=id eq '{STAMP}')")
    found = graph.get(f"contacts?$filter={flt}&$expand={expand}").json["value"]
    assert [c["givenName"] for c in found] == ["Other"]
    assert found[0]["singleValueExtendedProperties"] == [{"id": STAMP, "value": "crm-2"}]
    bad = graph.get(f"contacts?$filter={quote('givenName eq 1 and')}")
    assert bad.status == 400 and bad.code == "ErrorInvalidUrlQueryFilter"


def test_stamp_written_by_exchangelib_style_ews_is_visible_to_graph(ewsim):
    graph = Graph.connect(ewsim)
    xml = ("<t:Contact><t:ExtendedProperty><t:ExtendedFieldURI "
           "PropertySetId=\"6e3b5f1a-4c8e-4f6b-9a53-2d0b8c1e7f10\" PropertyName=\"CrmId\" "
           "PropertyType=\"String\"/><t:Value>crm-9</t:Value></t:ExtendedProperty>"
           "<t:GivenName>Eva</t:GivenName></t:Contact>")
    ewsim.control.create_item("alice@example.com", "contacts", xml=xml)
    flt = quote(f"singleValueExtendedProperties/any(e: e/id eq '{STAMP}' and e/value eq 'crm-9')")
    assert [c["givenName"] for c in graph.get(f"contacts?$filter={flt}").json["value"]] == ["Eva"]


def test_delta_pages_then_reports_changes_and_removals(ewsim):
    graph = Graph.connect(ewsim)
    ids = [graph.post("contacts", {"givenName": f"C{n}"}).json["id"] for n in range(5)]
    values, delta_link = graph.delta_round("contactFolders/contacts/contacts/delta", 2)
    assert sorted(v["id"] for v in values) == sorted(ids)
    assert all("@removed" not in v for v in values)
    # Nothing changed: an empty page with a new deltaLink.
    values, delta_link = graph.delta_round(delta_link)
    assert values == []
    graph.patch(f"contacts/{ids[0]}", {"surname": "Changed"})
    graph.delete(f"contacts/{ids[1]}")
    new = graph.post("contacts", {"givenName": "New"}).json["id"]
    ewsim.control.delete_item(ewsim.server.store.by_immutable[ids[2]].id)   # another client
    values, delta_link = graph.delta_round(delta_link)
    by_id = {v["id"]: v for v in values}
    assert set(by_id) == {ids[0], ids[1], ids[2], new}
    assert by_id[ids[0]]["surname"] == "Changed"
    assert by_id[ids[1]] == {"@odata.type": "#microsoft.graph.contact", "id": ids[1],
                             "@removed": {"reason": "deleted"}}
    assert by_id[ids[2]]["@removed"] == {"reason": "deleted"}


def test_delta_keeps_select_across_pages(ewsim):
    graph = Graph.connect(ewsim)
    for n in range(3):
        graph.post("contacts", {"givenName": f"C{n}", "surname": "S"})
    values, _link = graph.delta_round("contactFolders/contacts/contacts/delta?$select=givenName",
                                      1)
    assert len(values) == 3
    assert all(set(v) == {"@odata.etag", "id", "givenName"} for v in values)


def test_expired_and_foreign_and_garbage_delta_tokens_are_410(ewsim):
    graph = Graph.connect(ewsim)
    graph.post("contacts", {"givenName": "A"})
    _values, delta_link = graph.delta_round("contactFolders/contacts/contacts/delta")
    ewsim.control.expire_delta("alice@example.com")
    expired = graph.get(delta_link)
    assert expired.status == 410 and expired.code == "SyncStateNotFound"
    assert expired.headers["Location"].endswith("contactFolders/contacts/contacts/delta")
    # A full read again returns every contact once, and its tokens work.
    values, delta_link = graph.delta_round(expired.headers["Location"])
    assert [v["givenName"] for v in values] == ["A"]
    assert graph.get(delta_link).status == 200
    garbage = graph.get("contactFolders/contacts/contacts/delta?$deltatoken=bm9wZQ")
    assert garbage.status == 410 and garbage.code == "SyncStateNotFound"
    sub = ewsim.control.call("POST", "folders", {"mailbox": "alice@example.com",
                                                 "parent": "contacts", "name": "CRM",
                                                 "folder_class": "IPF.Contact"})
    token = delta_link.split("$deltatoken=")[1]
    foreign = graph.get(f"contactFolders/{sub['id']}/contacts/delta?$deltatoken={token}")
    assert foreign.status == 410


def test_contact_folders_list_children_of_the_default_folder(ewsim):
    graph = Graph.connect(ewsim)
    sub = ewsim.control.call("POST", "folders", {"mailbox": "alice@example.com",
                                                 "parent": "contacts", "name": "CRM",
                                                 "folder_class": "IPF.Contact"})
    listed = graph.get("contactFolders").json["value"]
    assert [(f["id"], f["displayName"]) for f in listed] == [(sub["id"], "CRM")]
    default = graph.get("contactFolders/contacts").json
    assert listed[0]["parentFolderId"] == default["id"]
    created = graph.post(f"contactFolders/{sub['id']}/contacts", {"givenName": "In CRM"}).json
    assert created["parentFolderId"] == sub["id"]
    missing = graph.get("contactFolders/AAMkF" + "x" * 30)
    assert missing.status == 404 and missing.code == "ErrorItemNotFound"
    calendar = graph.get("calendar").json["id"]    # a folder of another kind
    assert graph.get(f"contactFolders/{calendar}").status == 404
    malformed = graph.get("contactFolders/nope")
    assert malformed.status == 400 and malformed.code == "ErrorInvalidIdMalformed"


def test_photo_put_get_delete(ewsim):
    graph = Graph.connect(ewsim)
    contact = graph.post("contacts", {"givenName": "Pic"}).json
    path = f"contacts/{contact['id']}/photo/$value"
    assert graph.get(path).status == 404
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40
    assert graph.put(path, jpeg, "image/jpeg").status == 200
    got = graph.get(path)
    assert got.status == 200 and got.raw == jpeg and got.headers["Content-Type"] == "image/jpeg"
    assert graph.delete(path).status == 204
    assert graph.get(path).status == 404


def test_fax_and_other_phone_tags_are_the_ews_phone_entries(ewsim):
    graph = Graph.connect(ewsim)
    fax, other = "String 0x3A24", "String 0x3A1F"
    contact = graph.post("contacts", {"givenName": "Fax", "singleValueExtendedProperties": [
        {"id": fax, "value": "+420 5 1234"}]}).json
    store_id = ewsim.server.store.by_immutable[contact["id"]].id
    assert "BusinessFax" in ewsim.control.get_item(store_id)["props"]["PhoneNumbers"]
    xml = ('<t:Contact><t:PhoneNumbers><t:Entry Key="OtherTelephone">+420 9</t:Entry>'
           '</t:PhoneNumbers></t:Contact>')
    ewsim.control.update_item(store_id, xml=xml)
    expand = quote(f"singleValueExtendedProperties($filter=id eq '{fax}' or id eq '{other}')")
    read = graph.get(f"contacts/{contact['id']}?$expand={expand}").json
    assert read["singleValueExtendedProperties"] == [{"id": fax, "value": "+420 5 1234"},
                                                     {"id": other, "value": "+420 9"}]
    graph.patch(f"contacts/{contact['id']}", {"singleValueExtendedProperties": [
        {"id": fax, "value": None}]})
    props = ewsim.control.get_item(store_id)["props"]["PhoneNumbers"]
    assert "BusinessFax" not in props and "OtherTelephone" in props


def test_deleted_contact_is_listed_among_deleted_items_messages_by_stamp(ewsim):
    graph = Graph.connect(ewsim)
    contact = graph.post("contacts", JANA).json
    graph.delete(f"contacts/{contact['id']}")
    flt = quote(f"singleValueExtendedProperties/any(p: p/id eq '{STAMP}' and p/value eq 'crm-1')")
    found = graph.get(f"mailFolders/deleteditems/messages?$filter={flt}&$select=subject,"
                      f"parentFolderId").json["value"]
    assert [(m["id"], m["subject"]) for m in found] == [(contact["id"], "Jana Nováková")]
