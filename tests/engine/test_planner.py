"""The decision table, case by case, on plain records: no database, no Exchange."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.agendas.contacts import CONTACT_SYNCED
from engine.plan_actions import Conflict, Leave, Link, PendingDeletion, Side, Skip, Unlink
from engine.planner import (
    ConflictPolicy,
    DeletionPolicy,
    Direction,
    Known,
    Policy,
    Seen,
    plan_linked,
    plan_match,
    plan_new,
    plan_recovered,
    side_hash,
    snapshot,
)
from engine.records import Attendee, ContactRecord, EventRecord

T0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
BASE = ContactRecord(first_name="Petr", last_name="Svoboda", email1="petr@stavby.cz",
                     job_title="Jednatel")


def policy(direction: str = "two_way", conflict: str = "newest",
           deletion: str = "unlink") -> Policy:
    return Policy(Direction(direction), ConflictPolicy(conflict), DeletionPolicy(deletion),
                  CONTACT_SYNCED)


def known(record: ContactRecord = BASE, pol: Policy | None = None) -> Known:
    pol = pol or policy()
    snap = snapshot(record, pol)
    return Known("1", "10", side_hash(record, pol), snap, "X", "ck1", side_hash(record, pol),
                 snap)


def crm(record: ContactRecord | None, minutes: int = 0, **kw: object) -> Seen:
    return Seen("1", "11", record, modified=T0 + dt.timedelta(minutes=minutes), **kw)


def remote(record: ContactRecord | None, minutes: int = 0, **kw: object) -> Seen:
    return Seen("X", "ck2", record, modified=T0 + dt.timedelta(minutes=minutes), **kw)


def edit(**changes: object) -> ContactRecord:
    from dataclasses import replace

    return replace(BASE, **changes)


def test_unchanged_on_both_sides_only_refreshes_versions() -> None:
    plan = plan_linked(known(), crm(BASE), remote(BASE), policy())
    assert plan.writes == [] and len(plan.of(Link)) == 1


def test_a_new_version_with_the_same_content_is_not_a_change() -> None:
    plan = plan_linked(known(), None, remote(edit(modified=T0)), policy())
    assert plan.writes == []


def test_a_crm_change_goes_to_exchange_with_only_its_fields() -> None:
    (write,) = plan_linked(known(), crm(edit(job_title="CEO")), None, policy()).writes
    assert (write.side, write.key, write.fields) == (Side.REMOTE, "X", {"job_title"})


def test_an_exchange_change_goes_to_the_crm_with_only_its_fields() -> None:
    (write,) = plan_linked(known(), None, remote(edit(phone_mobile="+420 1")), policy()).writes
    assert (write.side, write.key, write.fields) == (Side.CRM, "1", {"phone_mobile"})


def test_changes_to_different_fields_on_both_sides_are_both_kept() -> None:
    plan = plan_linked(known(), crm(edit(job_title="CEO")), remote(edit(note="VIP")), policy())
    assert not plan.of(Conflict)
    by_side = {w.side: w.fields for w in plan.writes}
    assert by_side == {Side.REMOTE: {"job_title"}, Side.CRM: {"note"}}
    (link,) = plan.of(Link)
    assert link.crm_snapshot == link.remote_snapshot     # both end with both edits


def test_the_link_after_only_the_crm_write_agrees_on_what_came_in_and_keeps_the_rest() -> None:
    # Until the Exchange write is done (or if it never is), the link says: Exchange's note is
    # on both sides; the CRM's job title and its overlap with Exchange's phone are still to
    # carry, so the next plan from this link writes exactly what is missing.
    plan = plan_linked(known(), crm(edit(job_title="CEO", phone_mobile="1"), 5),
                       remote(edit(note="VIP", phone_mobile="2"), 1), policy())
    (link,) = plan.of(Link)
    assert link.before_remote is not None
    crm_then, remote_then = link.before_remote
    assert crm_then["note"] == remote_then["note"] == "VIP"
    assert crm_then["job_title"] == remote_then["job_title"] == "Jednatel"
    assert (crm_then["phone_mobile"], remote_then["phone_mobile"]) == ("", "")
    pol = policy()
    after = Known("1", "10", "", crm_then, "X", "ck1", "", remote_then)
    again = plan_linked(after, crm(edit(job_title="CEO", phone_mobile="1", note="VIP"), 5),
                        remote(edit(note="VIP", phone_mobile="2"), 1), pol)
    assert {w.side: w.fields for w in again.writes} == {
        Side.REMOTE: {"job_title", "phone_mobile"}}
    # A CRM change alone: Exchange's side, should the write be refused, stays as it is.
    (only_crm,) = plan_linked(known(), crm(edit(job_title="CEO")), None, pol).of(Link)
    assert only_crm.before_remote is not None
    assert only_crm.before_remote[1]["job_title"] == "Jednatel"
    assert only_crm.remote_snapshot["job_title"] == "CEO"


def test_the_same_change_on_both_sides_is_no_conflict() -> None:
    plan = plan_linked(known(), crm(edit(job_title="CEO")), remote(edit(job_title="CEO")),
                       policy())
    assert not plan.of(Conflict) and plan.writes == []


@pytest.mark.parametrize(("conflict", "crm_minutes", "remote_minutes", "winner"), [
    ("newest", 5, 1, Side.CRM), ("newest", 1, 5, Side.REMOTE), ("newest", 3, 3, Side.CRM),
    ("exchange", 9, 1, Side.REMOTE), ("crm", 1, 9, Side.CRM)])
def test_a_field_changed_on_both_sides_is_settled_by_the_policy(
        conflict: str, crm_minutes: int, remote_minutes: int, winner: Side) -> None:
    plan = plan_linked(known(), crm(edit(job_title="CEO"), crm_minutes),
                       remote(edit(job_title="Owner"), remote_minutes), policy(conflict=conflict))
    (found,) = plan.of(Conflict)
    assert found.winner is winner and found.fields == {"job_title"}
    (write,) = plan.writes
    assert write.side is (Side.REMOTE if winner is Side.CRM else Side.CRM)


def test_a_deletion_with_unlink_policy_only_stops_syncing() -> None:
    plan = plan_linked(known(), crm(None), None, policy(deletion="unlink"))
    assert plan.writes == [] and len(plan.of(Unlink)) == 1


@pytest.mark.parametrize("deleted_on", [Side.CRM, Side.REMOTE])
def test_a_deletion_with_propagate_policy_waits_for_the_guard(deleted_on: Side) -> None:
    args = (crm(None), None) if deleted_on is Side.CRM else (None, remote(None))
    plan = plan_linked(known(), *args, policy(deletion="propagate"))
    (pending,) = plan.of(PendingDeletion)
    assert pending.deleted_on is deleted_on and plan.writes == []


def test_deleted_against_changed_the_change_wins_and_comes_back() -> None:
    plan = plan_linked(known(), crm(None), remote(edit(note="still here")),
                       policy(deletion="propagate"))
    (write,) = plan.writes
    assert (write.side, write.key) == (Side.CRM, None) and write.record.note == "still here"


def test_deleted_on_both_sides_forgets_the_link() -> None:
    assert plan_linked(known(), crm(None), remote(None), policy()).of(Unlink)


@pytest.mark.parametrize("side", ["crm", "remote"])
def test_leaving_the_scope_is_not_a_deletion(side: str) -> None:
    out = {"crm": (crm(edit(), in_scope=False), None),
           "remote": (None, remote(edit(), in_scope=False))}[side]
    plan = plan_linked(known(), *out, policy(deletion="propagate"))
    assert plan.writes == [] and not plan.of(PendingDeletion) and plan.of(Unlink)


@pytest.mark.parametrize("crm_side", [None, "changed", "deleted"])
def test_moving_out_of_the_folder_is_leaving_the_scope_not_a_deletion(
        crm_side: str | None) -> None:
    now = {None: None, "changed": crm(edit(job_title="CEO")), "deleted": crm(None)}[crm_side]
    plan = plan_linked(known(), now, remote(None, moved_to="Archive/2026"),
                       policy(deletion="propagate"))
    (unlink,) = plan.actions
    assert unlink == Unlink("moved to Archive/2026 in Exchange; no longer synced, nothing "
                            "deleted", for_good=True)


def test_import_ignores_crm_edits_and_exchange_wins_overlaps() -> None:
    plan = plan_linked(known(), crm(edit(job_title="CEO", note="crm"), 9),
                       remote(edit(job_title="Owner"), 1), policy(direction="import"))
    assert [(w.side, w.fields) for w in plan.writes] == [(Side.CRM, {"job_title"})]


def test_export_ignores_exchange_deletions() -> None:
    plan = plan_linked(known(), None, remote(None), policy(direction="export",
                                                          deletion="propagate"))
    assert plan.of(Unlink) and not plan.of(PendingDeletion)


def test_a_new_record_is_created_on_the_other_side_unless_the_direction_forbids() -> None:
    (write,) = plan_new(Side.CRM, crm(BASE), policy()).writes
    assert (write.side, write.key) == (Side.REMOTE, None)
    assert plan_new(Side.CRM, crm(BASE), policy(direction="import")).of(Skip)
    assert plan_new(Side.REMOTE, remote(BASE, in_scope=False), policy()).actions == []


def test_matching_fills_empty_fields_both_ways_and_settles_differences() -> None:
    plan = plan_match(crm(edit(phone_mobile="+420 1", job_title="CEO"), 9),
                      remote(edit(note="VIP", job_title="Owner"), 1), policy())
    by_side = {w.side: w.fields for w in plan.writes}
    assert by_side[Side.REMOTE] == {"phone_mobile", "job_title"}
    assert by_side[Side.CRM] == {"note"}
    (found,) = plan.of(Conflict)
    assert found.fields == {"job_title"} and found.winner is Side.CRM


def test_a_first_link_keeps_the_crms_values_unless_exchange_wins_by_policy() -> None:
    # Exchange's record is the newer, but a first link has no history to judge by.
    for conflict, winner in (("newest", Side.CRM), ("crm", Side.CRM),
                             ("exchange", Side.REMOTE)):
        plan = plan_match(crm(edit(last_name="Svobodová")),
                          remote(edit(last_name="Svobodova"), 60), policy(conflict=conflict))
        (found,) = plan.of(Conflict)
        assert (found.fields, found.winner) == ({"last_name"}, winner)
        assert found.reason == "different on the two sides when first linked: last_name"
        ((write_side, fields),) = ((w.side, w.fields) for w in plan.writes)
        assert fields == {"last_name"}
        assert write_side is (Side.REMOTE if winner is Side.CRM else Side.CRM)


@pytest.mark.parametrize("conflict", ["newest", "crm", "exchange"])
def test_an_own_write_found_again_keeps_the_side_changed_since(conflict: str) -> None:
    """A crash between this server's write and its link: the copy (stamped or with its
    origin) is found again. A user's edit made since on either side is kept, whatever the
    conflict policy: the other side is the unchanged copy."""
    edited_in_exchange = plan_recovered(crm(BASE, 0), remote(edit(job_title="CEO"), 30),
                                        policy(conflict=conflict))
    (found,) = edited_in_exchange.of(Conflict)
    assert (found.fields, found.winner) == ({"job_title"}, Side.REMOTE)
    assert found.reason == ("changed on one side since this server's own write, whose link "
                            "was not recorded: job_title")
    assert [(w.side, w.fields) for w in edited_in_exchange.writes] == [
        (Side.CRM, frozenset({"job_title"}))]
    edited_in_crm = plan_recovered(crm(edit(job_title="CEO"), 30), remote(BASE, 5),
                                   policy(conflict=conflict))
    assert [(w.side, w.fields) for w in edited_in_crm.writes] == [
        (Side.REMOTE, frozenset({"job_title"}))]


def test_an_own_write_found_again_without_times_links_as_a_first_link() -> None:
    plan = plan_recovered(Seen("1", "11", edit(job_title="CEO")),
                          Seen("X", "ck2", BASE), policy(conflict="crm"))
    (found,) = plan.of(Conflict)
    assert found.winner is Side.CRM
    assert found.reason == "different on the two sides when first linked: job_title"


def test_matching_identical_records_writes_nothing() -> None:
    plan = plan_match(crm(BASE), remote(edit(display_name="Petr Svoboda")), policy())
    assert plan.writes == [] and not plan.of(Conflict) and plan.of(Link)


# --- shared meetings: one CRM event, several synced users' copies ----------------------------
MEETING = EventRecord(subject="Review", start=T0, end=T0 + dt.timedelta(hours=1),
                      attendees=(Attendee("bob@example.com"),), organizer="alice@example.com",
                      uid="UID-1", response="accepted")


def events_policy(deletion: str = "propagate") -> Policy:
    from engine.agendas.calendar import EVENT_SYNCED

    return Policy(Direction.TWO_WAY, ConflictPolicy.NEWEST, DeletionPolicy(deletion),
                  EVENT_SYNCED, one_way={"attendees": Side.REMOTE, "uid": Side.REMOTE,
                                         "categories": Side.CRM})


def meeting_known(organizes: bool | None = False, shared: bool = True) -> Known:
    pol = events_policy()
    snap = snapshot(MEETING, pol)
    return Known("1", "10", side_hash(MEETING, pol), snap, "X", "ck1", side_hash(MEETING, pol),
                 snap, organizes=organizes, shared=shared)


def in_crm(record: EventRecord) -> Seen:
    """The CRM's side of the meeting: the CRM does not read its attendees back."""
    from dataclasses import replace

    return Seen("1", "11", replace(record, attendees=(), organizer="", response=""))


def test_an_attendee_deleting_a_copy_others_have_leaves_the_meeting() -> None:
    plan = plan_linked(meeting_known(), None, remote(None), events_policy())
    (leave,) = plan.of(Leave)
    assert plan.writes == [] and plan.of(PendingDeletion) == []
    assert "do not organize" in leave.reason


def test_the_engines_own_attendee_write_does_not_undo_the_deletion() -> None:
    # The CRM event differs from the link's snapshot only in the attendees it cannot read.
    plan = plan_linked(meeting_known(shared=False), in_crm(MEETING), remote(None),
                       events_policy())
    assert plan.writes == [] and plan.of(PendingDeletion) == [PendingDeletion(Side.REMOTE)]


def test_the_organizer_deleting_a_shared_meeting_deletes_it_for_all() -> None:
    (pending,) = plan_linked(meeting_known(organizes=True), None, remote(None),
                             events_policy()).of(PendingDeletion)
    assert pending.deleted_on is Side.REMOTE and "organizer" in pending.reason


def test_the_last_synced_copy_deleted_deletes_the_crm_event() -> None:
    plan = plan_linked(meeting_known(shared=False), None, remote(None), events_policy())
    assert plan.of(PendingDeletion) == [PendingDeletion(Side.REMOTE)]


def test_declining_a_meeting_others_have_leaves_it_and_touches_no_copy() -> None:
    from dataclasses import replace

    plan = plan_linked(meeting_known(), None, remote(replace(MEETING, response="declined")),
                       events_policy())
    assert plan.writes == [] and len(plan.of(Leave)) == 1


def test_declining_the_last_synced_copy_deletes_the_crm_event_only() -> None:
    from dataclasses import replace

    declined = remote(replace(MEETING, response="declined"))
    plan = plan_linked(meeting_known(shared=False), None, declined, events_policy())
    (pending,) = plan.of(PendingDeletion)
    assert plan.writes == [] and pending.deleted_on is Side.REMOTE
    kept = plan_linked(meeting_known(shared=False), None, declined, events_policy("unlink"))
    assert kept.of(Unlink)[0].for_good and kept.of(PendingDeletion) == []


def test_a_cancelled_meeting_is_deleted_from_the_crm_unless_changed_there() -> None:
    from dataclasses import replace

    cancelled = remote(replace(MEETING, subject="Canceled: Review", cancelled=True))
    (pending,) = plan_linked(meeting_known(), None, cancelled, events_policy()).of(
        PendingDeletion)
    assert "cancelled" in pending.reason
    edited = in_crm(replace(MEETING, location="Room 7"))
    plan = plan_linked(meeting_known(), edited, cancelled, events_policy())
    assert plan.writes == [] and plan.of(Unlink)[0].for_good


def test_links_remember_whether_the_mailbox_organizes_the_event() -> None:
    from dataclasses import replace

    new = plan_new(Side.REMOTE, remote(MEETING), events_policy())
    assert new.of(Link)[0].organizes is False
    own = replace(MEETING, response="organizer")
    assert plan_new(Side.REMOTE, remote(own), events_policy()).of(Link)[0].organizes is True
    exported = plan_new(Side.CRM, in_crm(MEETING), events_policy())
    assert exported.of(Link)[0].organizes is True
    contact = plan_new(Side.REMOTE, remote(BASE), policy())
    assert contact.of(Link)[0].organizes is None


def test_the_choices_the_admin_stores_are_the_values_the_planner_decides_by() -> None:
    # One definition each (profiles/choices.py): a value added in one place only would be
    # stored by the admin and then fail the run that reads it.
    from profiles.models import CalendarSettings, ContactSettings, SyncProfile

    fields = {(CalendarSettings, "direction"): Direction,
              (ContactSettings, "direction"): Direction,
              (CalendarSettings, "deletion_policy"): DeletionPolicy,
              (ContactSettings, "deletion_policy"): DeletionPolicy,
              (SyncProfile, "conflict_policy"): ConflictPolicy}
    for (model, name), choices in fields.items():
        stored = [value for value, _ in model._meta.get_field(name).choices]
        assert [choices(value) for value in stored] == list(choices), (model, name)
