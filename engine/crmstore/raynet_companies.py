"""Raynet companies found or created by name, through one list of the instance's companies
read once per backend (so once a run), not a look-up per person.

A person's primary company is named by text in Exchange; Raynet needs the company's id. Reading
every company once (a page of 1,000 per request) and keeping the names in memory costs
⌈companies/1000⌉ requests a run, where a look-up per contact cost one request per contact.
Companies this run creates are added as they are made. Several writes run at once
(raynet_bulk.py): a company is created once however many of them name it at the same time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from engine.crmstore.raynet_client import RaynetClient

# What a company needs on create (required by the API); a new company from Exchange is an
# actual customer of the lowest rating until someone says otherwise in Raynet.
NEW_COMPANY = {"rating": "C", "state": "B_ACTUAL", "role": "A_SUBSCRIBER"}


def normalized(name: str) -> str:
    """How names are compared: case and runs of spaces do not matter."""
    return " ".join(name.split()).casefold()


class CompanyDirectory:
    def __init__(self, client: RaynetClient, owner: Callable[[], int | None]) -> None:
        self.client = client
        self._owner = owner
        self._lock = threading.Lock()
        self._ids: dict[str, str] | None = None
        # One lock per name being created, so two writes naming a new company at the same
        # time make it once, while writes naming other companies go on.
        self._creating: dict[str, threading.Lock] = {}

    def _known(self) -> dict[str, str]:
        """Name → id of every company, read on first use (the oldest of equal names wins,
        as the list is sorted by id)."""
        with self._lock:
            if self._ids is None:
                ids: dict[str, str] = {}
                for row in self.client.pages("company", {}):
                    ids.setdefault(normalized(str(row.get("name") or "")), str(row["id"]))
                self._ids = ids
            return self._ids

    def find_or_create(self, name: str) -> str:
        wanted = normalized(name)
        known = self._known()
        if wanted in known:
            return known[wanted]
        with self._lock:
            creating = self._creating.setdefault(wanted, threading.Lock())
        with creating:
            if wanted in known:          # made by another write meanwhile
                return known[wanted]
            body: dict[str, Any] = {"name": " ".join(name.split()), **NEW_COMPANY}
            owner = self._owner()
            if owner is not None:
                body["owner"] = owner
            key = str(self.client.call("PUT", "company/", body=body)["data"]["id"])
            with self._lock:
                known[wanted] = key
            return key
