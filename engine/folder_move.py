"""An agenda's folder changed after it synced: its synced items move with it.

The engine keeps one `FolderState` per (profile, agenda, folder). A state left for another
folder than the one the agenda now names means an administrator chose a new folder (the admin
asks them to confirm it: `console.folder_change`). Reading the new folder from scratch while
the links still name the old folder's items would leave those items behind, and the CRM
records linked to them out of the new folder; a force resync instead would create every CRM
record again in the new folder — the user's Outlook would hold both copies. So before the run
reads anything, the items of the agenda's live links are moved into the new folder (EWS
MoveItem), the links take the items' new identities, and the old folder's state is dropped.
The new folder is then read whole: the moved items come back in the versions the links hold,
and its other items are matched like a first sync's (identity stamp, e-mail address).

Items left alone: those of links no longer synced (moved away or unlinked by the deletion
policy) and the old folder's items that were never linked. Duplicate candidates not decided
yet name such an item: they are dropped, and their CRM records matched in the new folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from engine.mailbox import backend_class
from engine.mailbox.base import FolderInfo, ItemRef, MailboxBackend, WriteStatus
from engine.models import DuplicateCandidate, FolderState, Link, PendingItem, Retry
from engine.records import Kind

Record = Callable[[Link, str], None]   # what the run notes per moved item: (link, detail)


@dataclass(frozen=True)
class Followed:
    moved: int
    gone: int      # not in the mailbox any more: looked at again as a possible deletion
    failed: int    # left where they were; the next run tries again


def folder_changed(profile_id: int, agenda: str, folder_id: str) -> bool:
    """Whether the agenda has a sync state for a folder other than `folder_id`."""
    return FolderState.objects.filter(profile_id=profile_id, agenda=agenda).exclude(
        folder_id=folder_id).exists()


def follow_folder(profile_id: int, agenda: str, kind: Kind, folder: FolderInfo,
                  mailbox: MailboxBackend, moved: Record) -> Followed | None:
    """Move the agenda's synced items into `folder` if it is a newly chosen one; None if not.

    Run under the agenda's lease, before the run reads anything. A backend that cannot move
    items raises CannotMove before anything changed, and the run fails saying so."""
    if not folder_changed(profile_id, agenda, folder.id):
        return None
    where = {"profile_id": profile_id, "agenda": agenda}
    links = list(Link.objects.filter(**where, state=Link.State.ACTIVE).order_by("pk"))
    results = mailbox.move(kind, [ItemRef(link.remote_id) for link in links], folder) \
        if links else []
    gone = failed = 0
    with transaction.atomic():
        for link, result in zip(links, results, strict=True):
            if result.ok and result.ref is not None:
                old_id = link.remote_id
                link.remote_id, link.remote_version = result.ref.id, result.ref.version
                link.save(update_fields=["remote_id", "remote_version", "updated"])
                Retry.objects.filter(**where, side="remote", key=old_id).update(
                    key=result.ref.id)
                moved(link, f"moved into “{folder.path}” with the agenda's folder")
            elif result.status is WriteStatus.NOT_FOUND:
                # Deleted meanwhile: the retry reads it, finds it gone and applies the
                # deletion policy, as it would have on the old folder.
                Retry.objects.get_or_create(**where, side="remote", key=link.remote_id,
                                            defaults={"reason": "gone before its move"})
                gone += 1
            else:
                failed += 1
        if not failed:
            # The old folder's unlinked items are out of scope now, and its state is done;
            # so are the undecided pairings of its items with CRM records, whose CRM records
            # are then matched against the new folder like the rest.
            PendingItem.objects.filter(**where).delete()
            DuplicateCandidate.objects.filter(**where, applied=False).delete()
            FolderState.objects.filter(**where).exclude(folder_id=folder.id).delete()
    return Followed(len(links) - gone - failed, gone, failed)


def has_synced(profile_id: int, agenda: str) -> bool:
    """Whether the agenda has synced with its folder: it links items there, or has read it."""
    where = {"profile_id": profile_id, "agenda": agenda}
    return Link.objects.filter(**where).exists() or FolderState.objects.filter(
        **where).exclude(remote_state="").exists()


def can_move(kind: str) -> bool:
    """Whether the backend of a connection of this kind moves items (Graph does not)."""
    try:
        return backend_class(kind).move is not MailboxBackend.move
    except NotImplementedError:
        return False
