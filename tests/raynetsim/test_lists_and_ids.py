from __future__ import annotations


def _people(raynetsim, api, names):
    return [api.put(raynetsim.url + "person/", json={"lastName": n}).json()["data"]["id"]
            for n in names]


def test_lists_page_with_offset_and_limit_and_sort(raynetsim, api):
    _people(raynetsim, api, ["C", "A", "B"])
    page = api.get(raynetsim.url + "person/", params={
        "sortColumn": "lastName", "sortDirection": "DESC", "offset": 1, "limit": 2}).json()
    assert page["totalCount"] == 4          # the API user is a person too
    assert [p["lastName"] for p in page["data"]] == ["C", "B"]
    with raynetsim.invalid_on_purpose():
        too_big = api.get(raynetsim.url + "person/", params={"limit": 1001})
    assert too_big.status_code == 400


def test_filters_take_their_operator_in_brackets(raynetsim, api):
    a, b, c = _people(raynetsim, api, ["Adams", "Baker", "Cole"])
    found = api.get(raynetsim.url + "person/", params={"id[IN]": f"{a},{c}"}).json()
    assert [p["id"] for p in found["data"]] == [a, c]
    like = api.get(raynetsim.url + "person/", params={"lastName[LIKE]": "Ba%"}).json()
    assert [p["id"] for p in like["data"]] == [b]
    raynetsim.control.advance_clock(120)
    api.post(raynetsim.url + f"person/{b}/", json={"firstName": "Bo"})
    changed = api.get(raynetsim.url + "person/", params={
        "rowInfo.lastModifiedAt[GT]": "2000-01-01T00:00:00Z", "view": "rowInfo",
        "sortColumn": "rowInfo.lastModifiedAt", "sortDirection": "DESC", "limit": 1}).json()
    assert changed["data"][0]["id"] == b
    assert set(changed["data"][0]) >= {"rowInfo.createdAt", "rowInfo.updatedAt"}
    assert "lastName" not in changed["data"][0]
    with raynetsim.invalid_on_purpose():
        unknown = api.get(raynetsim.url + "person/", params={"shoeSize[EQ]": "9"})
    assert unknown.status_code == 400
    assert unknown.json()["message"] == "Unsupported filter column shoeSize"


def test_external_ids_find_a_record_and_stay_unique(raynetsim, api):
    person = api.put(raynetsim.url + "person/",
                     json={"lastName": "Ext", "extIds": ["exchange:1"]}).json()["data"]["id"]
    assert api.put(raynetsim.url + f"person/{person}/extId/",
                   json={"extId": "exchange:2"}).status_code == 200
    found = api.get(raynetsim.url + "person/ext/exchange:2/").json()["data"]
    assert (found["id"], found["extIds"]) == (person, ["exchange:1", "exchange:2"])
    with raynetsim.invalid_on_purpose():
        twice = api.put(raynetsim.url + "person/", json={"lastName": "X",
                                                         "extIds": ["exchange:1"]})
    assert twice.status_code == 400
    assert api.delete(raynetsim.url + f"person/{person}/extId/exchange:1").status_code == 200
    assert api.get(raynetsim.url + "person/ext/exchange:1/").status_code == 404


def test_tags_are_added_and_removed(raynetsim, api):
    person = _people(raynetsim, api, ["Tagged"])[0]
    assert api.put(raynetsim.url + f"person/{person}/tag/", json={"tag": "vip"}).status_code \
        == 201
    assert api.get(raynetsim.url + "person/", params={"tags": "vip"}).json()["totalCount"] == 1
    api.delete(raynetsim.url + f"person/{person}/tag/", json={"tag": "vip"})
    assert api.get(raynetsim.url + f"person/{person}/").json()["data"]["tags"] == []


def test_an_uploaded_file_is_attached_to_an_email(raynetsim, api):
    email = api.put(raynetsim.url + "email/", json={
        "title": "With file", "priority": "DEFAULT", "owner": raynetsim.user_person_id,
    }).json()["data"]["id"]
    uploaded = api.post(raynetsim.url + "fileUpload",
                        files={"file": ("a.txt", b"hello", "text/plain")}).json()
    assert (uploaded["fileName"], uploaded["fileSize"]) == ("a.txt", 5)
    attached = api.put(raynetsim.url + f"attachment/email/{email}/", json={
        "uuid": uploaded["uuid"], "fileName": "a.txt", "contentType": "text/plain",
        "fileSize": 5})
    assert attached.status_code == 201
    detail = api.get(raynetsim.url + f"email/{email}/").json()["data"]
    # As the specification's details list attachments: the file apart from a link.
    assert [(a["file"]["fileName"], a["file"]["size"], a["link"])
            for a in detail["attachments"]] == [("a.txt", 5, None)]


def test_a_row_info_list_filters_on_attributes_its_rows_do_not_show(raynetsim, api):
    mine = api.put(raynetsim.url + "meeting/", json={
        "title": "Mine", "priority": "DEFAULT", "owner": raynetsim.user_person_id,
    }).json()["data"]["id"]
    other = api.put(raynetsim.url + "person/", json={"lastName": "Novák"}).json()["data"]["id"]
    api.put(raynetsim.url + "meeting/", json={"title": "Theirs", "priority": "DEFAULT",
                                              "owner": other})
    rows = api.get(raynetsim.url + "meeting/", params={
        "owner-id": raynetsim.user_person_id, "view": "rowInfo"}).json()["data"]
    assert [row["id"] for row in rows] == [mine]
    assert "title" not in rows[0] and "rowInfo.lastModifiedAt" in rows[0]


def test_a_reference_column_filters_by_the_referenced_id(raynetsim, api):
    other = api.put(raynetsim.url + "person/", json={"lastName": "Novák"}).json()["data"]["id"]
    theirs = api.put(raynetsim.url + "person/", json={"lastName": "Dvořák", "owner": other},
                     ).json()["data"]["id"]
    rows = api.get(raynetsim.url + "person/", params={"owner": other}).json()["data"]
    assert [row["id"] for row in rows] == [theirs]
