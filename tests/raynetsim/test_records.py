from __future__ import annotations

import pytest

from raynetsim import spec

from .conftest import api_session


def test_put_creates_and_post_updates_a_person(raynetsim, api):
    created = api.put(raynetsim.url + "person/", json={
        "firstName": "Jana", "lastName": "Nováková",
        "contactInfo": {"email": "jana@example.com", "tel1": "+420 1"}})
    assert created.status_code == 201
    person_id = created.json()["data"]["id"]
    assert created.json()["success"] is True

    edited = api.post(raynetsim.url + f"person/{person_id}/",
                      json={"contactInfo": {"tel1": "+420 2"}})
    assert edited.status_code == 200

    detail = api.get(raynetsim.url + f"person/{person_id}/").json()["data"]
    assert detail["lastName"] == "Nováková"
    assert (detail["contactInfo"]["email"], detail["contactInfo"]["tel1"]) == (
        "jana@example.com", "+420 2")
    assert detail["contactInfo"]["fax"] is None
    assert detail["_version"] == 2
    assert detail["owner"] == {"id": raynetsim.user_person_id, "fullName": "Alice Example"}
    assert detail["rowInfo.createdBy"] == raynetsim.user


def test_a_create_without_a_required_attribute_is_refused(raynetsim, api):
    with raynetsim.invalid_on_purpose():
        answer = api.put(raynetsim.url + "company/", json={"name": "ACME"})
    assert answer.status_code == 400
    assert "rating" in answer.json()["message"]


def test_delete_removes_the_record(raynetsim, api):
    company_id = api.put(raynetsim.url + "company/", json={
        "name": "ACME", "rating": "A", "state": "B_ACTUAL", "role": "A_SUBSCRIBER"},
    ).json()["data"]["id"]
    assert api.delete(raynetsim.url + f"company/{company_id}/").status_code == 200
    assert api.get(raynetsim.url + f"company/{company_id}/").status_code == 404


def test_a_person_is_related_to_companies_with_one_primary(raynetsim, api):
    acme = api.put(raynetsim.url + "company/", json={
        "name": "ACME", "rating": "A", "state": "B_ACTUAL", "role": "A_SUBSCRIBER"},
    ).json()["data"]["id"]
    other = api.put(raynetsim.url + "company/", json={
        "name": "Other", "rating": "B", "state": "A_POTENTIAL", "role": "A_SUBSCRIBER"},
    ).json()["data"]["id"]
    person = api.put(raynetsim.url + "person/", json={
        "lastName": "Novák", "relationship": {"company": acme, "type": "ředitel"}},
    ).json()["data"]["id"]
    second = api.put(raynetsim.url + f"person/{person}/relationship/",
                     json={"company": other, "type": "konzultant"})
    assert second.status_code == 201

    detail = api.get(raynetsim.url + f"person/{person}/").json()["data"]
    assert detail["primaryRelationship"]["company"] == {"id": acme, "name": "ACME"}
    assert [r["company"]["id"] for r in detail["relationships"]] == [acme, other]
    first_id = detail["relationships"][0]["id"]
    api.delete(raynetsim.url + f"person/{person}/relationship/{first_id}/")
    detail = api.get(raynetsim.url + f"person/{person}/").json()["data"]
    assert detail["primaryRelationship"]["company"]["id"] == other


def test_meetings_carry_their_activity_category_and_local_dates(raynetsim, api):
    category = api.put(raynetsim.url + "activityCategory/",
                       json={"code01": "Porada", "code02": "aa99dd"}).json()["data"]["id"]
    categories = api.get(raynetsim.url + "activityCategory/").json()
    assert categories["data"] == [{"id": category, "code01": "Porada", "code02": "aa99dd"}]
    meeting = api.put(raynetsim.url + "meeting/", json={
        "title": "Kickoff", "priority": "DEFAULT", "owner": raynetsim.user_person_id,
        "category": category, "scheduledFrom": "2026-06-11 15:00",
        "scheduledTill": "2026-06-11T14:00:00.000Z"}).json()["data"]["id"]

    local = api.get(raynetsim.url + f"meeting/{meeting}/").json()["data"]
    assert local["category"] == {"id": category, "value": "Porada"}
    assert local["scheduledFrom"] == "2026-06-11 15:00"
    assert local["scheduledTill"] == "2026-06-11 16:00"     # Prague is UTC+2 in June
    iso = api.get(raynetsim.url + f"meeting/{meeting}/",
                  params={"dateFormat": "ISO8601"}).json()["data"]
    assert iso["scheduledFrom"] == "2026-06-11T15:00:00.000+02:00"


@pytest.mark.parametrize("entity", ["event", "email"])
def test_events_and_emails_are_activities_like_meetings(raynetsim, api, entity):
    made = api.put(raynetsim.url + f"{entity}/", json={
        "title": "Hello", "priority": "MINOR", "owner": raynetsim.user_person_id,
        "description": "body", "tags": ["crm"]})
    assert made.status_code == 201
    detail = api.get(raynetsim.url + f"{entity}/{made.json()['data']['id']}/").json()["data"]
    assert (detail["title"], detail["status"], detail["tags"]) == ("Hello", "SCHEDULED", ["crm"])


def test_instances_keep_their_own_records(raynetsim, api):
    raynetsim.control.add_instance("other", [{"email": "bob@example.com", "api_key": "k"}])
    api.put(raynetsim.url + "person/", json={"lastName": "Only in acme"})
    with api_session(raynetsim, "bob@example.com", "k", "other") as bob:
        people = bob.get(raynetsim.url + "person/").json()
    assert [p["lastName"] for p in people["data"]] == ["bob@example.com"]


@pytest.mark.parametrize(("entity", "body"), [
    ("person", {"lastName": "Shape"}),
    ("company", {"name": "Shape", "rating": "A", "state": "B_ACTUAL", "role": "A_SUBSCRIBER"}),
    ("meeting", {"title": "Shape", "priority": "DEFAULT", "owner": 1}),
    ("event", {"title": "Shape", "priority": "DEFAULT", "owner": 1}),
    ("email", {"title": "Shape", "priority": "DEFAULT", "owner": 1}),
])
def test_a_detail_has_every_attribute_of_the_specifications_example(raynetsim, api, entity,
                                                                      body):
    made = api.put(raynetsim.url + f"{entity}/", json=body).json()["data"]["id"]
    detail = api.get(raynetsim.url + f"{entity}/{made}/").json()["data"]
    assert set(spec.detail_example(entity)) <= set(detail)


def test_an_edit_answers_as_the_specification_declares_for_its_entity(raynetsim, api):
    # A meeting's edit answers {"success": true}; a person's answers without a body.
    meeting = api.put(raynetsim.url + "meeting/", json={
        "title": "Kickoff", "priority": "DEFAULT", "owner": raynetsim.user_person_id,
    }).json()["data"]["id"]
    edited = api.post(raynetsim.url + f"meeting/{meeting}/", json={"title": "Kick-off"})
    assert (edited.status_code, edited.json()) == (200, {"success": True})
    person = api.put(raynetsim.url + "person/", json={"lastName": "Novák"}).json()["data"]["id"]
    edited = api.post(raynetsim.url + f"person/{person}/", json={"firstName": "Jan"})
    assert (edited.status_code, edited.content) == (200, b"")


def test_an_api_users_person_shows_its_user_account(raynetsim, api):
    contact = api.put(raynetsim.url + "person/", json={"lastName": "Novák"}).json()["data"]["id"]
    user = api.get(raynetsim.url + f"person/{raynetsim.user_person_id}/").json()["data"]
    assert user["activeUserAccount"] is True
    assert user["userAccount"]["username"] == raynetsim.user
    contacts = api.get(raynetsim.url + "person/",
                       params={"userAccount-id[EQ_OR_NULL]": "0"}).json()["data"]
    assert [row["id"] for row in contacts] == [contact]


def test_user_accounts_name_the_person_each_user_is(raynetsim, api):
    found = api.get(raynetsim.url + "userAccount/",
                    params={"username": raynetsim.user.upper()}).json()
    assert found["totalCount"] == 1
    assert found["data"][0]["username"] == raynetsim.user
    assert found["data"][0]["person"]["id"] == raynetsim.user_person_id
    nobody = api.get(raynetsim.url + "userAccount/", params={"username": "x@example.com"})
    assert nobody.json()["data"] == []
