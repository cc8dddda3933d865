"""Live progress of a run: stored at most once a second, never inside a transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from engine import progress
from engine.models import Run
from engine.sync import sync
from ewsim.testing import SimHandle
from tests.engine.sync_helpers import make_profile, run_mail
from tests.engine.test_contacts_sync import add_exchange_contact
from tests.mailimport.test_import import mime


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr(progress, "clock", fake)
    yield fake


def stored(run: Run) -> tuple[int, int, str]:
    return tuple(Run.objects.filter(pk=run.pk).values_list(  # type: ignore[return-value]
        "progress_done", "progress_total", "progress_note").get())


def running_run(ewsim: SimHandle) -> Run:
    return Run.objects.create(profile=make_profile(ewsim), agenda="contacts")


@pytest.mark.django_db(transaction=True)
def test_progress_is_written_at_once_then_at_most_once_a_second(
        ewsim: SimHandle, clock: Clock) -> None:
    run = running_run(ewsim)
    progress.report(run, more=300, note="12 CRM changes to look at")
    assert stored(run) == (0, 300, "12 CRM changes to look at")
    progress.report(run, done=100)
    clock.now += 0.5
    progress.report(run, done=100)
    assert stored(run) == (0, 300, "12 CRM changes to look at")   # not yet: within a second
    assert (run.progress_done, run.progress_total) == (200, 300)  # but kept on the run
    clock.now += 0.6
    progress.report(run, done=50)
    assert stored(run) == (250, 300, "12 CRM changes to look at")


@pytest.mark.django_db(transaction=True)
def test_a_report_inside_a_transaction_is_written_after_the_commit(
        ewsim: SimHandle, clock: Clock) -> None:
    run = running_run(ewsim)
    with transaction.atomic():
        progress.report(run, done=100)
        assert stored(run)[0] == 0
    assert stored(run)[0] == 100
    clock.now += 2
    with pytest.raises(RuntimeError), transaction.atomic():
        progress.report(run, done=100)
        raise RuntimeError("the batch failed")
    assert stored(run)[0] == 100   # rolled back with its batch; the next report carries it


@pytest.mark.django_db(transaction=True)
def test_a_finished_run_is_never_written_again(ewsim: SimHandle, clock: Clock) -> None:
    run = running_run(ewsim)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCESS, finished=timezone.now())
    progress.report(run, done=5)
    assert stored(run)[0] == 0
    progress.report(None, done=5)   # a runner without its run yet: nothing to do


@pytest.mark.django_db(transaction=True)
def test_a_sync_reports_its_progress_outside_transactions_and_ends_with_the_totals(
        ewsim: SimHandle, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = make_profile(ewsim)
    for number in range(250):
        add_exchange_contact(ewsim, f"K{number:03}", "Test", f"k{number:03}@firma.cz")
    writes: list[dict[str, Any]] = []
    store = progress._store

    def watched(run_id: int, values: dict[str, Any]) -> None:
        assert not connection.in_atomic_block, "progress written inside a transaction"
        writes.append(values)
        clock.now += 1   # each write "takes" a second: the next report is due again
        store(run_id, values)

    monkeypatch.setattr(progress, "_store", watched)
    notes: list[str] = []
    run = sync(profile, "contacts", progress=notes.append)
    assert run.status == Run.Status.SUCCESS, run.message
    # The runner's own messages still reach the caller, and the dashboard as a note.
    assert notes and writes[0]["progress_note"] == notes[0]
    done = [values["progress_done"] for values in writes]
    assert done == sorted(done) and 0 < done[-2] < 250 and done[-1] == 250
    assert Run.objects.get(pk=run.pk).progress_done == 250   # the final save keeps it


@pytest.mark.django_db(transaction=True)
def test_mail_import_knows_how_many_messages_it_has_read(ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    for subject in ("Nabídka", "Objednávka", "Faktura"):
        ewsim.control.deliver(ewsim.user, mime=mime(subject))
    run = run_mail(ewsim, profile)
    assert run.status == Run.Status.SUCCESS, run.message
    assert stored(run)[:2] == (3, 3)


def _watch_writes(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> list[dict[str, Any]]:
    """Every progress write of the run, each one a second after the last."""
    writes: list[dict[str, Any]] = []
    store = progress._store

    def watched(run_id: int, values: dict[str, Any]) -> None:
        writes.append(values)
        clock.now += 1
        store(run_id, values)

    monkeypatch.setattr(progress, "_store", watched)
    return writes


@pytest.mark.django_db(transaction=True)
def test_a_first_read_of_several_pages_counts_all_it_will_handle_from_the_first_page(
        ewsim: SimHandle, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = make_profile(ewsim)
    for number in range(250):   # three pages of Exchange changes
        add_exchange_contact(ewsim, f"K{number:03}", "Test", f"k{number:03}@firma.cz")
    writes = _watch_writes(monkeypatch, clock)
    run = sync(profile, "contacts")
    assert run.status == Run.Status.SUCCESS, run.message
    during = [(values["progress_done"], values["progress_total"]) for values in writes
              if values["progress_done"]]
    # Not "100 of 100", "200 of 200": the folder's 250 from the start.
    assert len(during) >= 3 and during[0] == (100, 250)
    assert all(total == 250 for _done, total in during), during
    assert stored(run)[:2] == (250, 250)


@pytest.mark.django_db(transaction=True)
def test_items_the_read_does_not_handle_leave_the_total_at_what_it_did(
        ewsim: SimHandle, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = make_profile(ewsim)
    for number in range(120):
        add_exchange_contact(ewsim, f"K{number:03}", "Test", f"k{number:03}@firma.cz")
    # The folder holds 122 items; its two distribution lists are not synced contacts.
    for name in ("Team", "Sales"):
        ewsim.control.create_item(ewsim.user, folder="contacts", tag="DistributionList",
                                  xml=f"<t:DistributionList><t:DisplayName>{name}"
                                      "</t:DisplayName></t:DistributionList>")
    writes = _watch_writes(monkeypatch, clock)
    run = sync(profile, "contacts")
    assert run.crm_created == 120, run.message
    assert writes[1]["progress_total"] == 122   # the folder's size, up front
    assert stored(run)[:2] == (120, 120)


@pytest.mark.django_db(transaction=True)
def test_an_incremental_read_of_several_pages_counts_them_all_before_it_handles_them(
        ewsim: SimHandle, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = make_profile(ewsim)
    add_exchange_contact(ewsim, "Eva", "Nová", "eva@firma.cz")
    sync(profile, "contacts")
    profile.mass_create_min_items = 1000
    profile.save()
    for number in range(250):   # pushed into Exchange after the first sync
        add_exchange_contact(ewsim, f"K{number:03}", "Test", f"k{number:03}@firma.cz")
    writes = _watch_writes(monkeypatch, clock)
    run = sync(profile, "contacts")
    assert run.status == Run.Status.SUCCESS, run.message
    assert run.crm_created == 250
    during = [(values["progress_done"], values["progress_total"]) for values in writes
              if values["progress_done"]]
    assert len(during) >= 3 and all(total == 250 for _done, total in during), during
