"""`--seed demo`: a few records in a newly made instance, as its users would have entered
them in Raynet, so that a demo shows changes going from Raynet to Exchange too: two persons
of one company (one also a demo mailbox's contact, by e-mail: the first sync links them) and
a meeting, owned by the instance's API user."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .entities import stored_fields
from .store import Instance, Store, User

COMPANY = {"name": "Elektro Horák s.r.o.", "rating": "A", "state": "B_ACTUAL",
           "role": "A_SUBSCRIBER"}
PERSONS = [
    ({"firstName": "Karel", "lastName": "Horák", "titleBefore": "Ing.",
      "contactInfo": {"email": "karel.horak@elektro-horak.cz", "tel1": "+420 731 222 333",
                      "tel1Type": "mobil"}}, "Jednatel"),
    ({"firstName": "Jitka", "lastName": "Svobodová",
      "contactInfo": {"email": "jitka.svobodova@elektro-horak.cz", "tel2": "+420 466 333 444",
                      "tel2Type": "práce"}, "notice": "Zadaná v Raynetu."}, "Technička"),
]


def seed_demo(store: Store, instance: Instance, user: User, moment: Any) -> int:
    """Fill a newly made instance; returns how many records it got."""
    with store.lock:
        company = store.create(instance, "company", {
            **stored_fields(instance, "company", COMPANY), "owner": user.person_id},
            moment, user.email)
        for fields, position in PERSONS:
            person = store.create(instance, "person", {
                **stored_fields(instance, "person", fields), "owner": user.person_id},
                moment, user.email)
            person.relationships.append({"id": store.next_id(), "company": company.id,
                                         "type": position, "notice": None, "primary": True})
        # Tomorrow 9:00-10:00 in the instance's zone: inside the sync's window.
        start = (moment.astimezone(instance.zone) + dt.timedelta(days=1)).replace(
            hour=9, minute=0, second=0, microsecond=0)
        store.create(instance, "meeting", {
            "title": "Raynet: předvedení novinek", "priority": "DEFAULT",
            "scheduledFrom": start, "scheduledTill": start + dt.timedelta(hours=1),
            "meetingPlace": "Pardubice", "owner": user.person_id}, moment, user.email)
    return 1 + len(PERSONS) + 1
