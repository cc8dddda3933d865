"""The planner: what to do with one record, as a pure function of what is known about it.

No I/O, no Django, no Exchange: it takes what each side looks like now, what both looked like
when last synced (the link's snapshots) and the profile's policies, and returns actions; the
runner executes them. The decision table (docs/sync.md has it as a table):

A linked record, by what the CRM and Exchange show now:
- unchanged / unchanged: nothing; a new version with the same content is not a change.
- changed / unchanged: the changed fields go to Exchange; mirrored for a change in Exchange.
- changed / changed: merge. Fields changed on one side go to the other; a field changed on
  both to different values is a conflict, settled by the policy (newest change, Exchange
  wins, CRM wins); changed on both to the same value is no conflict.
- deleted / unchanged: "propagate" deletes in Exchange, after the mass-deletion guard;
  "unlink" stops syncing and keeps the Exchange item. Mirrored for a deletion in Exchange.
- deleted / changed: the change wins: "propagate" re-creates the record where it was deleted;
  "unlink" stops syncing. Mirrored.
- deleted / deleted: the link is forgotten.
- out of scope on either side: stop syncing, touch nothing (leaving the scope is not a
  deletion). An item moved out of the synced folder to another folder of the mailbox (not
  Deleted Items) has left the scope too, for good: archiving is not deleting.
Shared meetings (one CRM event, linked to several synced users' copies): an attendee's copy
deleted or declined while other synced users still have the meeting takes only that user off
it (their link and participation); the CRM event goes when its organizer's copy is deleted or
any copy says the organizer cancelled it, or when no synced user's copy remains.
One-way directions ignore the other side's changes and deletions: with "import" the CRM's
edits stay in the CRM (Exchange wins every overlap); with "export" the mirror.

A record not linked yet (the runner looks for its partner first and says what it found):
- an identity stamp names the partner: link; fields empty on one side are filled from the
  other, fields that differ are settled for the CRM unless Exchange wins by policy (a first
  link has no history for "newest change wins" to judge by);
- exactly one partner shares an e-mail address, the address is unique on both sides and the
  names agree (engine/matching.py): link, as above;
- several records share the address, on either side, or the names differ, or neither has an
  address and both have the same name and company: a duplicate candidate, neither copied
  nor linked until a user decides ("keep apart" lets the record be created as if unmatched);
- nothing: create it on the other side, if it is in scope and the direction allows it;
  otherwise skip, with the reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from engine.fitting import Limits, fit_data, fit_record
from engine.plan_actions import (
    Conflict,
    Leave,
    Link,
    PendingDeletion,
    Plan,
    Side,
    Skip,
    Unlink,
    Write,
)
from engine.records import Record, canonical, content_hash
from profiles.choices import ConflictPolicy, DeletionPolicy, Direction


@dataclass(frozen=True)
class Policy:
    direction: Direction
    conflict: ConflictPolicy
    deletion: DeletionPolicy
    synced_fields: frozenset[str]
    # Fields whose values mean different things on the two sides (a photo's token), so
    # "changed to the same value on both sides" cannot be told for them.
    side_specific: frozenset[str] = frozenset({"photo_token"})
    # Fields carried from one side only: e.g. attendees, which link CRM persons but are
    # never written to Exchange (that would make meetings nobody was invited to).
    one_way: dict[str, Side] = field(default_factory=dict)
    # The longest text Exchange keeps per field: a CRM value is written cut to it, and an
    # Exchange value equal to the CRM's value cut is the same value, not a change.
    remote_limits: Limits = field(default_factory=dict)

    def carries(self, source: Side, name: str) -> bool:
        return self.accepts(source) and self.one_way.get(name, source) is source

    def accepts(self, source: Side) -> bool:
        """May changes made on `source` be carried to the other side?"""
        if self.direction is Direction.TWO_WAY:
            return True
        return (self.direction is Direction.IMPORT) == (source is Side.REMOTE)


@dataclass
class Seen:
    """One side of a record as read in this run. `record` None: deleted on that side."""

    key: str
    version: str
    record: Record | None
    in_scope: bool = True
    modified: dt.datetime | None = None
    # Gone from the synced folder but found in this folder of the mailbox (its display path),
    # not in Deleted Items: moved away, which is leaving the scope, not a deletion.
    moved_to: str = ""

    @property
    def deleted(self) -> bool:
        return self.record is None


@dataclass
class Known:
    """What the link remembers of both sides at the last sync."""

    crm_key: str
    crm_version: str
    crm_hash: str
    crm_snapshot: dict[str, Any]
    remote_id: str
    remote_version: str
    remote_hash: str
    remote_snapshot: dict[str, Any]
    # Whether what the link remembers still lies in the synced scope. Only asked when one
    # side is deleted and the other did not change: that side was not read, so nothing else
    # tells whether the pair has left the scope (an event that fell out of the window).
    in_scope: bool = True
    # Meetings: whether this mailbox organizes it (None: not known), and whether other synced
    # users' copies are linked to the same CRM record.
    organizes: bool | None = None
    shared: bool = False


def snapshot(record: Record, policy: Policy) -> dict[str, Any]:
    data = canonical(record)
    return {k: v for k, v in data.items() if k in policy.synced_fields}


def as_remote(data: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """A CRM snapshot as Exchange holds it once written: cut to Exchange's lengths."""
    return fit_data(data, policy.remote_limits)


def remote_write(key: str | None, record: Record, fields: frozenset[str], reason: str,
                 policy: Policy) -> Write:
    """A write to Exchange, of the record cut to what Exchange keeps (never a refused item)."""
    fitted, cut = fit_record(record, policy.remote_limits)
    return Write(Side.REMOTE, key, fitted, fields, reason, shortened=cut & fields)


def side_hash(record: Record, policy: Policy) -> str:
    return content_hash(record, policy.synced_fields)


def changed_fields(now: dict[str, Any], before: dict[str, Any]) -> frozenset[str]:
    return frozenset(k for k in now.keys() | before.keys() if now.get(k) != before.get(k))


def as_compared(before: dict[str, Any], now: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """What a link remembers of a side, in the fields compared now: a field no longer
    compared is dropped, and one newly compared (the CRM's declared fields changed since the
    link was saved) has no past and counts as unchanged. Else a CRM's field left out since
    would look blanked, and one taken in would look changed on both sides."""
    return {f: before[f] if f in before else now[f] for f in policy.synced_fields
            if f in before or f in now}


def _carried_change(seen: Seen | None, before: dict[str, Any], side: Side,
                    policy: Policy) -> bool:
    """Whether `side` changed a field it carries to the other side. A field it does not
    carry (a meeting's attendees in the CRM: written there from Exchange, never read back)
    may differ from the link's snapshot after the engine's own write: no user's edit."""
    if seen is None or seen.record is None:
        return False
    now = snapshot(seen.record, policy)
    return any(policy.carries(side, f)
               for f in changed_fields(now, as_compared(before, now, policy)))


def _organizes(seen: Seen | None) -> bool | None:
    """Whether the mailbox organizes the item `seen` (events only; None: not told)."""
    return getattr(seen.record, "organizes", None) if seen and seen.record else None


def _created_in_mailbox(record: Record) -> bool | None:
    """An event the engine creates in the mailbox is the mailbox's own: it organizes it."""
    return True if hasattr(record, "organizes") else None


def _winner(policy: Policy, crm: Seen, remote: Seen) -> Side:
    if policy.conflict is ConflictPolicy.CRM:
        return Side.CRM
    if policy.conflict is ConflictPolicy.EXCHANGE:
        return Side.REMOTE
    # Newest change wins; an unknown time counts as older, and a tie goes to the CRM.
    crm_time = crm.modified or dt.datetime.min.replace(tzinfo=dt.UTC)
    remote_time = remote.modified or dt.datetime.min.replace(tzinfo=dt.UTC)
    return Side.REMOTE if remote_time > crm_time else Side.CRM


class Unplannable(ValueError):
    """The planner was asked about a side it was told changed but not shown: a caller's
    bug, raised rather than planned on a guess."""


def _given(seen: Seen | None) -> Seen:
    if seen is None:
        raise Unplannable("a changed side was not given")
    return seen


def _record(seen: Seen | None) -> Record:
    record = _given(seen).record
    if record is None:
        raise Unplannable(f"{seen!r} changed but has no record")
    return record


def _merged(base: dict[str, Any], other: dict[str, Any], fields: frozenset[str]) -> dict:
    return {**base, **{k: other.get(k) for k in fields}}


def merge(known_crm: dict[str, Any], known_remote: dict[str, Any], crm: Seen | None,
          remote: Seen | None, policy: Policy, crm_key: str = "", remote_id: str = "") -> Plan:
    """Carry each side's changes to the other and settle the overlap. A side given as None
    reported no change: it still holds what the link remembers of it."""
    crm_read = snapshot(crm.record, policy) if crm and crm.record else {}
    remote_read = snapshot(remote.record, policy) if remote and remote.record else {}
    known_crm = as_compared(known_crm, crm_read, policy)
    known_remote = as_compared(known_remote, remote_read, policy)
    crm_now = crm_read or known_crm
    remote_now = remote_read or known_remote
    crm_fields = frozenset(f for f in changed_fields(crm_now, known_crm)
                           if policy.carries(Side.CRM, f))
    remote_fields = frozenset(f for f in changed_fields(remote_now, known_remote)
                              if policy.carries(Side.REMOTE, f))
    both = crm_fields & remote_fields
    crm_as_remote = as_remote(crm_now, policy)
    overlap = frozenset(f for f in both
                        if f in policy.side_specific or crm_as_remote.get(f) != remote_now.get(f))
    plan = Plan()
    winner = Side.CRM
    if overlap:
        winner = _winner(policy, _given(crm), _given(remote))
        plan.add(Conflict(overlap, winner, f"changed on both sides: {', '.join(sorted(overlap))}"))
    to_crm = (remote_fields - both) | (overlap if winner is Side.REMOTE else frozenset())
    to_remote = (crm_fields - both) | (overlap if winner is Side.CRM else frozenset())
    crm_key = crm.key if crm else crm_key
    remote_id = remote.key if remote else remote_id
    if to_crm:
        plan.add(Write(Side.CRM, crm_key, _record(remote), to_crm, "changed in Exchange"))
    if to_remote:
        plan.add(remote_write(remote_id, _record(crm), to_remote, "changed in the CRM", policy))
    link = Link(crm_key, remote_id,
                crm_snapshot=_merged(crm_now, remote_now, to_crm),
                remote_snapshot=_merged(remote_now, crm_as_remote, to_remote),
                crm_version=crm.version if crm else "",
                remote_version=remote.version if remote else "",
                organizes=_organizes(remote))
    if to_crm or to_remote:
        # Not yet on the other side: the CRM's changes, and Exchange's photo (side-specific
        # fields travel after the Exchange write).
        pending = to_remote | (to_crm & policy.side_specific)
        link.before_remote = (
            {**link.crm_snapshot, **{f: known_crm.get(f) for f in pending}},
            {**link.remote_snapshot, **{f: known_remote.get(f) for f in pending}})
    return plan.add(link)


def _meeting_left(known: Known, crm: Seen | None, remote: Seen | None,
                  policy: Policy) -> Plan | None:
    """A meeting copy deleted, declined or cancelled in Exchange (None: not such a case, or
    one the plain deletion rows settle). The CRM event stands for the meeting, not for one
    copy of it: an attendee leaving a meeting other synced users still have takes only
    themselves off it; the organizer deleting or cancelling it deletes it for everyone; the
    last synced copy going deletes it, as any deletion does."""
    if remote is None or not policy.accepts(Side.REMOTE) or (crm is not None and crm.deleted):
        return None
    record = remote.record
    cancelled = bool(getattr(record, "cancelled", False))
    declined = getattr(record, "response", "") == "declined"
    organizer = getattr(record, "organizer", "") or "its organizer"
    if remote.deleted:
        if not known.in_scope:
            return None   # left the scope: touches nothing (the plain rows say so)
        if known.organizes is True and known.shared:
            if policy.deletion is DeletionPolicy.UNLINK or _carried_change(
                    crm, known.crm_snapshot, Side.CRM, policy):
                return None   # kept, or the CRM's change wins: the plain rows
            return Plan().add(PendingDeletion(Side.REMOTE, (
                "You deleted this meeting as its organizer: the CRM event is deleted, "
                "and the other synced attendees' copies with it, under their deletion policy")))
        if not known.shared:
            return None   # the plain deletion rows
        return Plan().add(Leave(
            "You deleted your copy of a meeting you attend but do not organize, and other "
            "synced users still have it: only your link and your participation were removed; "
            "the CRM event and the other attendees' copies stay"
            if known.organizes is False else
            "You deleted your copy of a meeting other synced users still have, and it is not "
            "known whether you organize it: only your link and your participation were "
            "removed; the CRM event and the other attendees' copies stay"))
    if cancelled:
        kept = "this cancelled copy is left in your calendar for you to remove"
        if policy.deletion is DeletionPolicy.UNLINK or _carried_change(
                crm, known.crm_snapshot, Side.CRM, policy):
            return Plan().add(Unlink(
                f"{organizer} cancelled this meeting; the CRM event is kept (changed in the CRM "
                f"since, or deletions are not carried over) and no longer synced; {kept}",
                for_good=True))
        return Plan().add(PendingDeletion(Side.REMOTE, (
            f"{organizer} cancelled this meeting: the CRM event is deleted, and the other "
            f"synced attendees' copies with it, under their deletion policy; {kept}")))
    if not declined:
        return None
    if known.shared:
        return Plan().add(Leave(
            f"You declined a meeting that {organizer} organizes and other synced users still "
            "attend: only your link and your participation were removed; the CRM event and "
            "the other attendees' copies stay; your declined copy is left as it is"))
    if policy.deletion is DeletionPolicy.UNLINK or _carried_change(
            crm, known.crm_snapshot, Side.CRM, policy):
        return Plan().add(Unlink(
            "You declined this meeting; the CRM event is kept (changed in the CRM since, or "
            "deletions are not carried over) and no longer synced", for_good=True))
    return Plan().add(PendingDeletion(Side.REMOTE, (
        "You declined this meeting and no other synced user attends it: the CRM event is "
        "deleted; your declined copy is left as it is")))


def plan_linked(known: Known, crm: Seen | None, remote: Seen | None, policy: Policy) -> Plan:
    """A linked pair. `crm`/`remote` None: that side reported no change this run."""
    for side, seen in ((Side.CRM, crm), (Side.REMOTE, remote)):
        if seen is not None and seen.moved_to:
            # Kept as unlinked, like a deletion's survivor: forgotten, the record still in
            # the other side's scope would be copied into the folder again. Before the
            # meeting rules: a meeting copy moved away is no meeting left.
            where = "the CRM" if side is Side.CRM else "Exchange"
            return Plan().add(Unlink(f"moved to {seen.moved_to} in {where}; no longer synced, "
                                     "nothing deleted", for_good=True))
    left = _meeting_left(known, crm, remote, policy)
    if left is not None:
        return left
    for side, seen in ((Side.CRM, crm), (Side.REMOTE, remote)):
        where = "the CRM" if side is Side.CRM else "Exchange"
        if seen is not None and not seen.deleted and not seen.in_scope:
            return Plan().add(Unlink(f"left the synced scope in {where}; nothing deleted"))

    crm_changed = crm is not None and (crm.deleted or
                                       side_hash(crm.record, policy) != known.crm_hash)
    remote_changed = remote is not None and (
        remote.deleted or side_hash(remote.record, policy) != known.remote_hash)

    if crm is not None and crm.deleted and remote is not None and remote.deleted:
        return Plan().add(Unlink("deleted on both sides"))
    if not known.in_scope and (crm is None or remote is None):
        # One side deleted, the other unchanged and out of scope: "left the scope | any"
        # touches nothing, so the deletion is not carried over to the other side.
        return Plan().add(Unlink("deleted on one side after the pair left the synced scope; "
                                 "the other side is left alone"))
    for deleted_side, other_seen in ((Side.CRM, remote), (Side.REMOTE, crm)):
        seen = crm if deleted_side is Side.CRM else remote
        if seen is None or not seen.deleted:
            continue
        where = "the CRM" if deleted_side is Side.CRM else "Exchange"
        other = Side.REMOTE if deleted_side is Side.CRM else Side.CRM
        if not policy.accepts(deleted_side) or policy.deletion is DeletionPolicy.UNLINK:
            return Plan().add(Unlink(f"deleted in {where}; kept on the other side",
                                     for_good=True))
        before = known.remote_snapshot if other is Side.REMOTE else known.crm_snapshot
        if _carried_change(other_seen, before, other, policy):
            # Modified against deleted: the modification wins and comes back. Only a change
            # the other side carries counts, or the engine's own write would undo a deletion.
            record = _record(other_seen)
            other_seen = _given(other_seen)
            write = _write_new(deleted_side, record, policy,
                               f"deleted in {where} but changed on the other side: "
                               "the change wins")
            return Plan().add(write).add(
                Link(None if deleted_side is Side.CRM else other_seen.key,
                     None if deleted_side is Side.REMOTE else other_seen.key,
                     crm_snapshot=snapshot(record, policy),
                     remote_snapshot=snapshot(write.record, policy),
                     crm_version=other_seen.version if other is Side.CRM else "",
                     remote_version=other_seen.version if other is Side.REMOTE else "",
                     organizes=_created_in_mailbox(record) if deleted_side is Side.REMOTE
                     else _organizes(other_seen)))
        return Plan().add(PendingDeletion(deleted_side))

    if not crm_changed and not remote_changed:
        # Same content: only remember the new versions (Exchange rewrites ChangeKeys often).
        return Plan().add(Link(known.crm_key, known.remote_id, known.crm_snapshot,
                               known.remote_snapshot,
                               crm_version=crm.version if crm else "",
                               remote_version=remote.version if remote else "",
                               organizes=_organizes(remote)))
    plan = merge(known.crm_snapshot, known.remote_snapshot,
                 crm if crm_changed else None, remote if remote_changed else None, policy,
                 crm_key=known.crm_key, remote_id=known.remote_id)
    # A side seen in a new version with the same content is "unchanged" for the merge, but
    # its new version is still what the link must remember and what a write to it must
    # name: Exchange refuses an update naming the old ChangeKey (a conflict, run after run).
    for link in plan.of(Link):
        link.crm_version = link.crm_version or (crm.version if crm else "")
        link.remote_version = link.remote_version or (remote.version if remote else "")
    return plan


def _write_new(target: Side, record: Record, policy: Policy, reason: str) -> Write:
    """A record created on `target` with all its synced fields."""
    if target is Side.REMOTE:
        return remote_write(None, record, policy.synced_fields, reason, policy)
    return Write(target, None, record, policy.synced_fields, reason)


def plan_new(source: Side, seen: Seen, policy: Policy) -> Plan:
    """A record nobody links yet and no partner found: create it on the other side."""
    where = "the CRM" if source is Side.CRM else "Exchange"
    if seen.record is None:
        return Plan()
    if not seen.in_scope:
        # Not the profile's business (another branch, outside the window): no history line,
        # or every past event would be "skipped" on every first sync.
        return Plan()
    if not policy.accepts(source):
        direction = "import only" if policy.direction is Direction.IMPORT else "export only"
        return Plan().add(Skip(f"new in {where}, but this profile syncs {direction}"))
    target = Side.REMOTE if source is Side.CRM else Side.CRM
    write = _write_new(target, seen.record, policy, f"new in {where}")
    snap = snapshot(seen.record, policy)
    return Plan().add(write).add(
        Link(seen.key if source is Side.CRM else None, seen.key if source is Side.REMOTE else None,
             crm_snapshot=snap,
             remote_snapshot=snap if write.record is seen.record
             else snapshot(write.record, policy),
             crm_version=seen.version if source is Side.CRM else "",
             remote_version=seen.version if source is Side.REMOTE else "",
             organizes=_created_in_mailbox(seen.record) if source is Side.CRM
             else _organizes(seen)))


def plan_match(crm: Seen, remote: Seen, policy: Policy) -> Plan:
    """Two records found to be the same (by stamp, a unique shared address or a user's
    decision): link them. A field empty on one side is filled from the other; a field that
    differs is a conflict, settled for the CRM (the system of record) unless Exchange wins
    by policy: "newest change wins" has no history to judge by on a first link."""
    crm_record, remote_record = _record(crm), _record(remote)
    if policy.conflict is ConflictPolicy.NEWEST:
        policy = dataclasses.replace(policy, conflict=ConflictPolicy.CRM)
    crm_now, remote_now = snapshot(crm_record, policy), snapshot(remote_record, policy)
    # Everything that differs is "changed on both sides" since there is no common past;
    # empty values never overwrite filled ones.
    # A CRM value Exchange holds cut to its length is the same value on both sides.
    differs = frozenset(f for f in changed_fields(as_remote(crm_now, policy), remote_now)
                        if f not in policy.side_specific)
    fill_crm = frozenset(f for f in differs if _empty(crm_now.get(f)))
    fill_remote = frozenset(f for f in differs if _empty(remote_now.get(f)))
    known_crm = {k: (None if k in differs - fill_crm else v) for k, v in crm_now.items()}
    known_remote = {k: (None if k in differs - fill_remote else v)
                    for k, v in remote_now.items()}
    # Fields only one side has: as if the empty side had not changed them.
    for f in fill_crm:
        known_crm[f] = crm_now.get(f)
    for f in fill_remote:
        known_remote[f] = remote_now.get(f)
    # Side-specific fields (photos) count as unchanged on both sides until one changes.
    for f in policy.side_specific:
        known_crm[f] = crm_now.get(f)
        known_remote[f] = remote_now.get(f)
    plan = merge(known_crm, known_remote, crm, remote, policy)
    for conflict in plan.of(Conflict):
        conflict.reason = ("different on the two sides when first linked: "
                           + ", ".join(sorted(conflict.fields)))
    return plan


def plan_recovered(crm: Seen, remote: Seen, policy: Policy) -> Plan:
    """This server's own earlier write found again (by the identity stamp it wrote, or the
    origin it recorded) whose link was not recorded: a crash came in between. One side was
    then a copy of the other, so where they differ now, one side was changed since: the
    newer side's values are kept, whatever the conflict policy (a user's edit made in the
    meantime is not overwritten by the copy). Without both modification times, as a first
    link."""
    if crm.modified is None or remote.modified is None:
        return plan_match(crm, remote, policy)
    newer = ConflictPolicy.EXCHANGE if remote.modified > crm.modified else ConflictPolicy.CRM
    plan = plan_match(crm, remote, dataclasses.replace(policy, conflict=newer))
    for conflict in plan.of(Conflict):
        conflict.reason = ("changed on one side since this server's own write, whose link was "
                           "not recorded: " + ", ".join(sorted(conflict.fields)))
    return plan


def _empty(value: Any) -> bool:
    if isinstance(value, dict):
        return not any(value.values())
    return value in (None, "", [], ())
