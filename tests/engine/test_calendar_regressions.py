"""Calendar bugs the state machine (`test_calendar_state_machine.py`) found, one test each."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from crm.models import Event
from engine.models import Lease, Link, Run
from ewsim.testing import SimHandle

from .sync_helpers import exchange_events, make_profile, run_calendar
from .test_calendar_sync import TODAY, add_exchange_event, at, crm_event

pytestmark = pytest.mark.django_db(transaction=True)


def test_deleting_one_side_of_an_event_that_left_the_window_leaves_the_other(
        ewsim: SimHandle) -> None:
    """'Left the scope | any: touch nothing' (docs/sync.md). The pair left the window with no
    change, so its link was still active; deleting one side then deleted the other, which
    nobody could see in the window any more."""
    profile = make_profile(ewsim)
    item_id = add_exchange_event(ewsim, "Past", at(1, 9))
    kept = crm_event(profile, "Also past", at(2, 9))
    run_calendar(ewsim, profile, today=TODAY)
    imported = Event.objects.get(subject="Past")
    later = TODAY + dt.timedelta(days=30)     # both events now lie before the window
    imported.delete()
    ewsim.control.delete_item(next(i for i, e in exchange_events(ewsim).items()
                                   if e.subject == "Also past"))
    run = run_calendar(ewsim, profile, today=later)
    assert run.status == Run.Status.SUCCESS, run.message
    assert (run.crm_deleted, run.remote_deleted) == (0, 0)
    assert item_id in exchange_events(ewsim)
    assert Event.objects.filter(pk=kept.pk).exists()
    assert not Link.objects.filter(profile=profile).exists()
    assert run_calendar(ewsim, profile, today=later).items.count() == 0


def test_deleting_an_event_inside_the_window_still_deletes_the_other_side(
        ewsim: SimHandle) -> None:
    profile = make_profile(ewsim)
    add_exchange_event(ewsim, "Soon", at(1, 9))
    run_calendar(ewsim, profile, today=TODAY)
    Event.objects.get().delete()
    run = run_calendar(ewsim, profile, today=TODAY + dt.timedelta(days=5))
    assert run.remote_deleted == 1 and exchange_events(ewsim) == {}


def test_a_run_killed_after_reading_the_window_still_copies_crm_events_that_entered_it(
        ewsim: SimHandle) -> None:
    """The day's window read was marked done before the CRM events found in it were
    handled: a worker killed in between left them uncopied until the next day."""
    from engine.run.journal import Killed

    profile = make_profile(ewsim)
    add_exchange_event(ewsim, "Exchange, later", at(40, 9))
    crm_event(profile, "CRM, later", at(40, 11))
    assert run_calendar(ewsim, profile, today=TODAY).items.count() == 0   # outside
    later = TODAY + dt.timedelta(days=20)

    def kill(label: str) -> None:
        if label == "crm write":     # the first write after the window was read
            raise Killed(label)

    with pytest.raises(Killed):
        run_calendar(ewsim, profile, today=later, checkpoint=kill)
    from django.utils import timezone

    from engine.models import Lease

    Lease.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    run = run_calendar(ewsim, profile, today=later)
    assert run.status == Run.Status.SUCCESS, run.message
    assert sorted(e.subject for e in exchange_events(ewsim).values()) == [
        "CRM, later", "Exchange, later"]
    assert sorted(Event.objects.values_list("subject", flat=True)) == [
        "CRM, later", "Exchange, later"]
    assert Link.objects.filter(profile=profile).count() == 2


def test_an_occurrence_keeps_its_own_privacy_when_the_series_is_private(
        ewsim: SimHandle) -> None:
    """A CRM series made private after one occurrence was moved: Exchange's copy of that
    occurrence took the series' sensitivity (it was not written with the exception), so the
    linked sides differed for ever."""
    profile = make_profile(ewsim)
    start = at(8, 13)
    series = crm_event(profile, "Porada", start, private=True, recurrence={
        "pattern": {"type": "weekly", "interval": 1,
                    "weekdays": [start.strftime("%A")]},
        "range": {"start": start.date().isoformat(), "end": None, "count": 4}})
    moved_from = start + dt.timedelta(days=14)
    Event.objects.create(organization_id=profile.organization_id, owner=profile.crm_user,
                         recurrence_master=series, original_start=moved_from,
                         subject="Porada (moved)", start=moved_from + dt.timedelta(hours=1),
                         end=moved_from + dt.timedelta(hours=2), time_zone="Europe/Prague",
                         private=False)
    run = run_calendar(ewsim, profile, today=TODAY)
    assert run.status == Run.Status.SUCCESS, run.message
    (copy,) = exchange_events(ewsim).values()
    assert copy.private is True
    assert [(e.subject, e.private) for e in copy.exceptions] == [("Porada (moved)", False)]
    assert run_calendar(ewsim, profile, today=TODAY).items.count() == 0


def test_editing_a_series_that_has_a_moved_occurrence_keeps_the_occurrence_as_it_is(
        ewsim: SimHandle) -> None:
    """A CRM series' location edited after one occurrence was moved: Exchange carries a
    master's change over to occurrences that do not set that field themselves, so the
    moved occurrence took the new location in Exchange while the CRM's kept its own, and
    the linked sides differed for ever."""
    profile = make_profile(ewsim)
    start = at(8, 10)
    series = crm_event(profile, "Porada", start, recurrence={
        "pattern": {"type": "weekly", "interval": 1, "weekdays": [start.strftime("%A")]},
        "range": {"start": start.date().isoformat(), "end": None, "count": 2}})
    Event.objects.create(organization_id=profile.organization_id, owner=profile.crm_user,
                         recurrence_master=series, original_start=start,
                         subject="Porada (moved)", start=start + dt.timedelta(hours=1),
                         end=start + dt.timedelta(hours=2), time_zone="Europe/Prague")
    assert run_calendar(ewsim, profile, today=TODAY).status == Run.Status.SUCCESS
    series.location = "Praha"
    series.save()
    run = run_calendar(ewsim, profile, today=TODAY)
    assert run.status == Run.Status.SUCCESS, run.message
    (copy,) = exchange_events(ewsim).values()
    assert copy.location == "Praha"
    assert [(e.subject, e.location) for e in copy.exceptions] == [("Porada (moved)", "")]
    assert run_calendar(ewsim, profile, today=TODAY).items.count() == 0


def test_twins_seen_by_a_killed_run_are_not_doubled_once_they_left_the_window(
        ewsim: SimHandle) -> None:
    """One meeting entered in the CRM and in Outlook (matched by subject and start); the run
    that saw both was killed at its first checkpoint, and the next ran after the pair had
    left the window: the Exchange event was copied into the CRM beside its twin."""
    from engine.run.journal import Killed

    profile = make_profile(ewsim)
    assert run_calendar(ewsim, profile, today=TODAY).status == Run.Status.SUCCESS
    start = at(0, 8)
    crm_event(profile, "Porada", start)
    add_exchange_event(ewsim, "Porada", start)

    def kill(label: str) -> None:
        raise Killed(label)

    with pytest.raises(Killed):
        run_calendar(ewsim, profile, today=TODAY, checkpoint=kill)
    Lease.objects.filter(profile=profile).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1))
    run = run_calendar(ewsim, profile, today=TODAY + dt.timedelta(days=16))
    assert run.status == Run.Status.SUCCESS, run.message
    assert Event.objects.filter(subject="Porada").count() == 1
    assert len(exchange_events(ewsim)) == 1
