"""An activity's participants as MeetingEditDto describes them, and its recurrence, which
Raynet shows but its API does not write."""

from __future__ import annotations

from typing import Any

import requests

from raynetsim.testing import RaynetHandle


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
        (raynetsim.user_person_id, True, "FROM"), (eva, False, "TO")]
    evas = participants()[1]["id"]
    assert api.post(url + f"meeting/{key}/", json={"participants": [
        {"id": -evas}, {"person": jan}]}).status_code == 200
    assert [(p["person"], p["owner"], p["role"]) for p in participants()] == [
        (raynetsim.user_person_id, True, "FROM"), (jan, False, None)]
    jans = participants()[1]["id"]
    api.post(url + f"meeting/{key}/", json={"participants": [{"id": jans, "role": "TO"}]})
    assert participants()[1]["role"] == "TO"
    with raynetsim.invalid_on_purpose():
        refused = api.post(url + f"meeting/{key}/",
                           json={"participants": [{"person": 999_999}]})
    assert refused.status_code == 400 and "no person" in refused.json()["message"]


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
