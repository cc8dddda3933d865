"""An activity's participants as Raynet keeps them: the owner (FROM) from the create on, then
what an edit's `participants` add (no id), change (its id) or remove (its id negated); and
an activity's recurrence, which Raynet shows but its API does not write."""

from __future__ import annotations

from typing import Any

import requests

from raynetsim.testing import RaynetHandle


def _detail(raynetsim, api, entity, record_id):
    return api.get(raynetsim.url + f"{entity}/{record_id}/").json()["data"]


def test_an_edit_adds_changes_and_removes_participants(raynetsim, api):
    eva = api.put(raynetsim.url + "person/", json={
        "firstName": "Eva", "lastName": "Nová",
        "contactInfo": {"email": "eva@acme.cz"}}).json()["data"]["id"]
    jan = api.put(raynetsim.url + "person/", json={"lastName": "Dvořák"}).json()["data"]["id"]
    company = api.put(raynetsim.url + "company/", json={
        "name": "Acme a.s.", "rating": "A", "state": "B_ACTUAL", "role": "A_SUBSCRIBER",
    }).json()["data"]["id"]
    email = api.put(raynetsim.url + "email/", json={
        "title": "Nabídka", "priority": "DEFAULT", "owner": raynetsim.user_person_id,
    }).json()["data"]["id"]
    owner, = _detail(raynetsim, api, "email", email)["participants"]
    assert (owner["owner"], owner["person"]) == (True, raynetsim.user_person_id)

    api.post(raynetsim.url + f"email/{email}/", json={"participants": [
        {"person": eva, "role": "FROM"}, {"person": jan, "role": "TO"}, {"company": company}]})
    shown = _detail(raynetsim, api, "email", email)["participants"]
    assert [(p["person"], p["company"], p["role"]) for p in shown] == [
        (raynetsim.user_person_id, None, "FROM"), (eva, None, "FROM"), (jan, None, "TO"),
        (None, company, None)]
    assert (shown[1]["name"], shown[1]["email"]) == ("Eva Nová", "eva@acme.cz")
    assert shown[3]["name"] == "Acme a.s."

    api.post(raynetsim.url + f"email/{email}/", json={"participants": [
        {"id": -shown[2]["id"]}, {"id": shown[1]["id"], "role": "TO"}]})
    after = _detail(raynetsim, api, "email", email)["participants"]
    assert [(p["person"], p["role"]) for p in after[1:]] == [(eva, "TO"), (None, None)]


def test_an_unknown_participant_is_refused(raynetsim, api):
    email = api.put(raynetsim.url + "email/", json={
        "title": "Nabídka", "priority": "DEFAULT", "owner": raynetsim.user_person_id,
    }).json()["data"]["id"]
    with raynetsim.invalid_on_purpose():
        refused = api.post(raynetsim.url + f"email/{email}/",
                           json={"participants": [{"id": -999}]})
    assert refused.status_code == 400


def test_the_owners_participant_follows_the_owner(raynetsim, api):
    other = api.put(raynetsim.url + "person/", json={"lastName": "Jiný"}).json()["data"]["id"]
    meeting = api.put(raynetsim.url + "meeting/", json={
        "title": "Porada", "priority": "DEFAULT", "owner": raynetsim.user_person_id,
    }).json()["data"]["id"]
    api.post(raynetsim.url + f"meeting/{meeting}/", json={"owner": other})
    owner, = _detail(raynetsim, api, "meeting", meeting)["participants"]
    assert (owner["owner"], owner["person"]) == (True, other)


def test_an_edit_adds_changes_and_removes_participants_by_id(
        raynetsim: RaynetHandle, api: requests.Session) -> None:
    url = raynetsim.url
    eva, jan = (api.put(url + "person/", json={"lastName": name}).json()["data"]["id"]
                for name in ("Nová", "Novák"))
    key = api.put(url + "meeting/", json={"title": "Porada", "priority": "DEFAULT",
                                          "owner": raynetsim.user_person_id,
                                          "person": eva}).json()["data"]["id"]

    def participants() -> list[dict[str, Any]]:
        return api.get(url + f"meeting/{key}/").json()["data"]["participants"]

    # The owner is the participant FROM; the person named on create takes part too.
    assert [(p["person"], p["owner"], p["role"]) for p in participants()] == [
        (raynetsim.user_person_id, True, "FROM"), (eva, False, None)]
    evas = participants()[1]["id"]
    assert api.post(url + f"meeting/{key}/", json={"participants": [
        {"id": -evas}, {"person": jan}]}).status_code == 200
    assert [(p["person"], p["owner"], p["role"]) for p in participants()] == [
        (raynetsim.user_person_id, True, "FROM"), (jan, False, None)]
    jans = participants()[1]["id"]
    api.post(url + f"meeting/{key}/", json={"participants": [{"id": jans, "role": "TO"}]})
    assert participants()[1]["role"] == "TO"
    with raynetsim.invalid_on_purpose():
        refused = api.post(url + f"meeting/{key}/", json={"participants": [
            {"id": -jans}, {"person": 999_999}]})
    assert refused.status_code == 400 and "no person" in refused.json()["message"]
    # Refused as a whole: nothing of it was kept.
    assert [p["person"] for p in participants()] == [raynetsim.user_person_id, jan]


def test_a_recurrence_is_shown_as_seeded_and_not_written_through_the_api(
        raynetsim: RaynetHandle, api: requests.Session) -> None:
    url = raynetsim.url
    recurrence = {"id": 5, "count": 3, "endDate": None, "interval": "WEEKLY",
                  "recurrenceDay": 4, "startDate": "2030-03-07"}
    seeded = raynetsim.control.add_record(raynetsim.instance, "meeting", {
        "title": "Call", "priority": "DEFAULT", "recurrence": recurrence})
    assert api.get(url + f"meeting/{seeded}/").json()["data"]["recurrence"] == recurrence
    made = api.put(url + "meeting/", json={"title": "Porada", "priority": "DEFAULT",
                                           "owner": raynetsim.user_person_id,
                                           "recurrence": recurrence}).json()["data"]["id"]
    api.post(url + f"meeting/{made}/", json={"recurrence": recurrence})
    assert api.get(url + f"meeting/{made}/").json()["data"]["recurrence"] is None
