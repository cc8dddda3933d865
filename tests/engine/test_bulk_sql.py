"""The link table's plain-SQL writes of many rows: what Django's bulk_create and bulk_update
would have stored, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from crm.models import CrmUser
from engine.models import Link
from engine.run import bulk_sql
from engine.run.bulk_sql import insert_rows, update_column
from profiles.models import Organization, SyncProfile
from tests.engine.crmstore.harness import sync_profile

pytestmark = pytest.mark.django_db


@pytest.fixture
def profile() -> SyncProfile:
    organization = Organization.objects.create(name="Acme")
    user = CrmUser.objects.create(organization=organization, name="Alice", login="alice")
    return sync_profile(organization, user.pk, "own")


def row(profile: SyncProfile, i: int, **values: object) -> dict[str, object]:
    return {"profile_id": profile.pk, "agenda": "calendar", "crm_key": str(i),
            "remote_id": f"AAMk{i}", **values}


def test_rows_are_stored_as_django_would_store_them(profile: SyncProfile) -> None:
    snapshot = {"subject": "Porada – sklad", "start": "2026-12-07T09:00:00+00:00",
                "categories": ["Zákazník"], "private": False, "count": 3, "none": None}
    before = timezone.now()
    insert_rows(Link, [row(profile, 1, crm_version="7", crm_snapshot=snapshot,
                           remote_snapshot={}, organizes=True, state=Link.State.UNLINKED,
                           title="Porada"),
                       row(profile, 2, organizes=None)])
    first, second = Link.objects.order_by("crm_key")
    assert (first.crm_version, first.crm_snapshot, first.organizes, first.state, first.title) \
        == ("7", snapshot, True, Link.State.UNLINKED, "Porada")
    # Left out: the field's default; the automatic dates are now.
    assert (second.crm_version, second.crm_snapshot, second.organizes, second.state) \
        == ("", {}, None, Link.State.ACTIVE)
    assert before <= second.created <= timezone.now()
    assert second.created == second.updated
    assert Link.objects.filter(organizes__isnull=True).count() == 1   # NULL, not "None"


def test_many_rows_go_in_statements_the_database_accepts(profile: SyncProfile,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    # More rows than fit one statement under SQLite's oldest limit of 999 parameters.
    monkeypatch.setattr(bulk_sql, "ROWS_PER_STATEMENT", 300)
    insert_rows(Link, [row(profile, i) for i in range(1234)])
    assert Link.objects.count() == 1234
    links = list(Link.objects.order_by("pk"))
    update_column(Link, "remote_version", [(link.pk, f"ck-{link.crm_key}") for link in links])
    assert all(link.remote_version == f"ck-{link.crm_key}" for link in Link.objects.all())


def test_a_value_of_another_type_is_prepared_by_its_field(profile: SyncProfile) -> None:
    # An int for a text column is written as text, as Django would write it.
    insert_rows(Link, [row(profile, 1, crm_version=42, title="x" * 10)])
    assert Link.objects.get().crm_version == "42"


def test_an_unknown_name_is_refused_before_anything_is_written(profile: SyncProfile) -> None:
    with pytest.raises(ValueError, match="no field"):
        insert_rows(Link, [row(profile, 1), row(profile, 2, crm_kye="typo")])
    assert not Link.objects.exists()


def test_update_column_prepares_dates_like_django(profile: SyncProfile) -> None:
    insert_rows(Link, [row(profile, 1)])
    link = Link.objects.get()
    when = dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC)
    update_column(Link, "created", [(link.pk, when)])
    assert Link.objects.get().created == when
