"""The tracked models' bulk_create writes its rows with plain INSERT … RETURNING
(crm/bulk_insert.py): every column as Django's own bulk_create writes it, ids handed back in
order, and the batch recorded in the change journal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import models

from crm import bulk_insert
from crm.models import CrmUser, Event, Person
from crm.tracking import changes_since
from tests.base import BaseTestCase

START = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


def _rows(model: type[models.Model], ids: list[int]) -> list[dict[str, Any]]:
    by_id = {row["id"]: row for row in model.objects.filter(pk__in=ids).values()}
    return [{k: v for k, v in by_id[i].items() if k != "id"} for i in ids]


class BulkInsertTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.owner = CrmUser.objects.create(organization=self.acme, name="Dave", login="dave")

    def _persons(self) -> list[Person]:
        owner = self.owner
        return [
            Person(organization=self.acme, first_name="Jana", last_name="Nováková",
                   email1="jana@acme.example", owner=owner, origin_item_id="AAMk1",
                   photo=b"\x89PNG\x00\xff"),
            Person(organization=self.acme, first_name="", last_name="O'Brien; DROP TABLE",
                   job_title="Ředitel 🚀", owner=None),
            Person(organization=self.acme, last_name="Třetí"),
        ]

    def test_the_rows_are_those_django_writes_and_the_ids_come_back_in_order(self) -> None:
        if not bulk_insert.insertable(Person, self._persons(), "default"):
            self.skipTest("this database does not return the rows of a multi-row INSERT")
        fast, plain = self._persons(), self._persons()
        created = Person.objects.bulk_create(fast)
        # Django's own bulk_create, untracked, as the reference for every column.
        models.QuerySet(Person).bulk_create(plain)
        assert created == fast and all(p.pk and not p._state.adding for p in fast)
        assert [p.last_name for p in Person.objects.filter(pk__in=[p.pk for p in fast])
                .order_by("pk")] == ["Nováková", "O'Brien; DROP TABLE", "Třetí"]
        fast_rows, plain_rows = _rows(Person, [p.pk for p in fast]), _rows(
            Person, [p.pk for p in plain])
        for row in (*fast_rows, *plain_rows):
            row.pop("revision")
            if isinstance(row.get("photo"), memoryview):
                row["photo"] = bytes(row["photo"])
        assert fast_rows == plain_rows
        assert fast_rows[0]["photo"] == b"\x89PNG\x00\xff"
        journal = {c.object_id for c in changes_since(self.acme.id, "person", 0)}
        assert {p.pk for p in fast} <= journal

    def test_dates_json_and_flags_of_events_too(self) -> None:
        def events() -> list[Event]:
            return [Event(organization=self.acme, owner=self.owner, subject="Porada", start=START,
                          end=START.replace(hour=23), all_day=True,
                          recurrence={"pattern": "daily", "interval": 2},
                          deleted_occurrences=["2026-03-30T00:00:00+00:00"]),
                    Event(organization=self.acme, owner=self.owner, subject="Oběd", start=START,
                          end=START,
                          private=True)]
        if not bulk_insert.insertable(Event, events(), "default"):
            self.skipTest("this database does not return the rows of a multi-row INSERT")
        fast, plain = events(), events()
        Event.objects.bulk_create(fast)
        models.QuerySet(Event).bulk_create(plain)
        fast_rows, plain_rows = _rows(Event, [e.pk for e in fast]), _rows(
            Event, [e.pk for e in plain])
        for row in (*fast_rows, *plain_rows):
            row.pop("revision")
        assert fast_rows == plain_rows
        assert Event.objects.get(pk=fast[0].pk).recurrence == {"pattern": "daily",
                                                               "interval": 2}

    def test_more_rows_than_one_statement_takes(self) -> None:
        persons = [Person(organization=self.acme, last_name=f"Osoba {i}") for i in range(450)]
        Person.objects.bulk_create(persons)
        ids = [p.pk for p in persons]
        assert len(set(ids)) == 450
        assert [p.last_name for p in Person.objects.filter(pk__in=ids).order_by("pk")] == [
            f"Osoba {i}" for i in range(450)]
