"""The link table of one profile's agenda: its links, parked items, retries, duplicate
candidates and folder states — every query a run makes about them, in one place.

A dry run gets the table without its writes (`DryRunLinkTable`): it reads what a sync would
read and keeps nothing, so that deciding what a dry run leaves alone is done here once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

from engine.mailbox.base import ItemRef
from engine.models import DuplicateCandidate, FolderState, Link, PendingItem, Retry
from engine.run.bulk_sql import insert_rows, update_column
from profiles.models import SyncProfile

# Keys per IN (...) list: far below every database's limit on a statement's parameters.
CHUNK = 500


class LinkTable:
    def __init__(self, profile: SyncProfile, agenda: str) -> None:
        self.profile = profile
        self.agenda = agenda

    # --- links --------------------------------------------------------------------------------
    def links(self) -> models.QuerySet[Link]:
        return Link.objects.filter(profile=self.profile, agenda=self.agenda)

    def by_remote_id(self, remote_ids: Iterable[str]) -> dict[str, Link]:
        return {link.remote_id: link
                for link in self.links().filter(remote_id__in=list(remote_ids))}

    def by_crm_key(self, crm_keys: Iterable[str]) -> dict[str, Link]:
        return {link.crm_key: link for link in self.links().filter(crm_key__in=list(crm_keys))}

    def remote_versions(self, crm_keys: Iterable[str]) -> dict[str, tuple[int, str, str]]:
        """Per CRM key its link's id, Exchange id and Exchange version: no more (a link's
        snapshots are decoded JSON, and the identity stamps of a first import asked for them
        100 links at a time only to move their versions on; bench/)."""
        return {crm_key: (pk, remote_id, version) for pk, crm_key, remote_id, version
                in self.links().filter(crm_key__in=list(crm_keys)).values_list(
                    "pk", "crm_key", "remote_id", "remote_version")}

    def linked_crm_keys(self, crm_keys: Iterable[str] | None = None) -> set[str]:
        """Which of these CRM records are linked (in any state); all linked ones if None."""
        query = self.links()
        if crm_keys is not None:
            query = query.filter(crm_key__in=list(crm_keys))
        return set(query.values_list("crm_key", flat=True))

    def linked_remote_ids(self, remote_ids: Iterable[str]) -> set[str]:
        return set(self.links().filter(remote_id__in=list(remote_ids))
                   .values_list("remote_id", flat=True))

    def linked_uids(self, uids: list[str]) -> set[str]:
        return set(self.links().filter(remote_uid__in=uids).values_list("remote_uid", flat=True))

    def known_versions(self, refs: list[ItemRef]) -> set[str]:
        """Items whose version the links already hold: this run's or an earlier run's own
        writes, read back. They need not be fetched."""
        versions = dict(self.links().filter(
            remote_id__in=[r.id for r in refs], state=Link.State.ACTIVE,
        ).values_list("remote_id", "remote_version"))
        return {r.id for r in refs if r.version and versions.get(r.id) == r.version}

    def unchanged_in_crm(self, revisions: dict[str, str]) -> set[str]:
        """The CRM keys whose revision is the version their active link holds (one query per
        CHUNK keys)."""
        keys = list(revisions)
        same: set[str] = set()
        for start in range(0, len(keys), CHUNK):
            same.update(crm_key for crm_key, version in self.links().filter(
                state=Link.State.ACTIVE, crm_key__in=keys[start:start + CHUNK],
            ).values_list("crm_key", "crm_version") if revisions[crm_key] == version)
        return same

    def waiting_deletions(self) -> models.QuerySet[Link]:
        return self.links().filter(state__in=[Link.State.CRM_DELETED,
                                              Link.State.REMOTE_DELETED])

    def synced_count(self) -> int:
        return self.links().exclude(state=Link.State.UNLINKED).count()

    def active_pairs(self) -> list[tuple[str, str, str]]:
        """(crm key, item id, item version) of every active link, oldest first."""
        return list(self.links().filter(state=Link.State.ACTIVE).order_by("pk").values_list(
            "crm_key", "remote_id", "remote_version"))

    def others_links(self, crm_keys: list[str]) -> models.QuerySet[Link]:
        """Other synced users' live links to these CRM records (one CRM per organization)."""
        return (Link.objects.filter(profile__organization_id=self.profile.organization_id,
                                    profile__active=True, agenda=self.agenda,
                                    crm_key__in=crm_keys, state=Link.State.ACTIVE)
                .exclude(profile=self.profile))

    def new_link(self, **values: Any) -> Link:
        return Link(profile=self.profile, agenda=self.agenda, **values)

    def replace_links(self, new_links: dict[str, dict[str, Any]]) -> None:
        """Links stored anew, by CRM key. Rows left by an interrupted run or stored before
        the Exchange writes are replaced: one delete and one insert cost less than an UPDATE
        per row (or bulk_update's CASE per field and row: a second of a two-way first
        sync)."""
        if not new_links:
            return
        self.links().filter(crm_key__in=list(new_links)).delete()
        insert_rows(Link, [{"profile_id": self.profile.pk, "agenda": self.agenda, **values}
                           for values in new_links.values()])

    def store_link(self, crm_key: str, values: dict[str, Any]) -> None:
        Link.objects.update_or_create(profile=self.profile, agenda=self.agenda,
                                      crm_key=crm_key, defaults=values)

    def save_many(self, fresh: list[Link], changed: list[Link], fields: list[str]) -> None:
        """New links inserted, changed ones updated (these fields), a statement each."""
        if changed:
            Link.objects.bulk_update(changed, fields)
        if fresh:
            Link.objects.bulk_create(fresh)

    def save_remote_versions(self, versions: list[tuple[int, str]]) -> None:
        """New Exchange versions, (link id, version) pairs: a statement per few hundred."""
        update_column(Link, "remote_version", versions)

    def set_state(self, link: Link, state: str) -> None:
        link.state = state
        link.save(update_fields=["state", "updated"])

    def forget(self, link: Link) -> None:
        link.delete()

    # --- parked Exchange items (new, waiting for the whole folder to be read) -----------------
    def park(self, items: list[tuple[str, list[str]]]) -> None:
        """Items parked with their match keys; one statement for a page's (not a transaction
        per item)."""
        if len(items) < 2:
            for remote_id, keys in items:
                PendingItem.objects.update_or_create(profile=self.profile, agenda=self.agenda,
                                                     remote_id=remote_id,
                                                     defaults={"match_keys": keys})
            return
        PendingItem.objects.bulk_create(
            [PendingItem(profile=self.profile, agenda=self.agenda, remote_id=remote_id,
                         match_keys=keys) for remote_id, keys in items],
            update_conflicts=True, unique_fields=["profile", "agenda", "remote_id"],
            update_fields=["match_keys"])

    def parked(self) -> list[tuple[str, list[str]]]:
        return list(PendingItem.objects.filter(profile=self.profile, agenda=self.agenda)
                    .values_list("remote_id", "match_keys"))

    def unpark(self, remote_ids: list[str]) -> None:
        if not remote_ids:
            return
        PendingItem.objects.filter(profile=self.profile, agenda=self.agenda,
                                   remote_id__in=remote_ids).delete()

    # --- retries --------------------------------------------------------------------------------
    def retries(self) -> list[Retry]:
        return list(Retry.objects.filter(profile=self.profile, agenda=self.agenda))

    def drop_retries(self, retries: list[Retry]) -> None:
        Retry.objects.filter(pk__in=[r.pk for r in retries]).delete()

    def retry_later(self, side: str, key: str, reason: str) -> None:
        Retry.objects.update_or_create(profile=self.profile, agenda=self.agenda, side=side,
                                       key=key, defaults={"reason": reason[:2000]})

    def retry_unless_waiting(self, side: str, key: str, reason: str) -> None:
        Retry.objects.get_or_create(profile=self.profile, agenda=self.agenda, side=side,
                                    key=key, defaults={"reason": reason})

    # --- duplicate candidates -----------------------------------------------------------------
    def candidates(self) -> models.QuerySet[DuplicateCandidate]:
        return DuplicateCandidate.objects.filter(profile=self.profile, agenda=self.agenda)

    def decided(self, decisions: list[str]) -> list[DuplicateCandidate]:
        """Candidates users decided on since the last run, in one of these ways."""
        return list(self.candidates().filter(applied=False, decision__in=decisions))

    def held_as_candidates(self, crm_keys: list[str]) -> set[str]:
        """Which of these CRM records are open duplicate candidates."""
        return set(self.candidates().filter(
            crm_key__in=crm_keys, decision=DuplicateCandidate.Decision.OPEN,
        ).values_list("crm_key", flat=True))

    def kept_apart(self) -> set[tuple[str, str]]:
        return set(self.candidates().filter(decision=DuplicateCandidate.Decision.APART)
                   .values_list("crm_key", "remote_id"))

    def close_candidacies(self, crm_key: str, remote_id: str) -> None:
        """A pair linked by a user's decision: the other open candidacies of either are
        closed."""
        self.candidates().filter(decision=DuplicateCandidate.Decision.OPEN).filter(
            models.Q(crm_key=crm_key) | models.Q(remote_id=remote_id)).update(
            decision=DuplicateCandidate.Decision.APART)

    def mark_applied(self, candidate: DuplicateCandidate) -> None:
        DuplicateCandidate.objects.filter(pk=candidate.pk).update(applied=True)

    def propose(self, crm_key: str, remote_id: str, *, address: str, remote_title: str,
                remote_fields: dict[str, Any], crm_title: str) -> None:
        DuplicateCandidate.objects.update_or_create(
            profile=self.profile, agenda=self.agenda, crm_key=crm_key, remote_id=remote_id,
            defaults={"remote_fields": remote_fields},
            create_defaults={"address": address, "remote_title": remote_title,
                             "remote_fields": remote_fields, "crm_title": crm_title})

    # --- folder states --------------------------------------------------------------------------
    def folder_state(self, folder_id: str) -> FolderState:
        state, _ = FolderState.objects.get_or_create(profile=self.profile, agenda=self.agenda,
                                                     folder_id=folder_id)
        return state

    def save_state(self, state: FolderState, **values: Any) -> None:
        """The folder's sync state moved on (its changes applied and recorded). Values it
        holds already are not written again: a run that found nothing moves nothing (two
        statements of a no-change run, 20,000 of those every interval at 10,000 profiles)."""
        changed = [name for name, value in values.items() if getattr(state, name) != value]
        if not changed:
            return
        for name in changed:
            setattr(state, name, values[name])
        state.save(update_fields=[*changed, "updated"])


class DryRunLinkTable(LinkTable):
    """The table as a dry run sees it: read as it is, never written. Items it parks are
    kept in memory, since matching reads them back at the end of the run."""

    def __init__(self, profile: SyncProfile, agenda: str) -> None:
        super().__init__(profile, agenda)
        self._parked: list[tuple[str, list[str]]] = []

    def replace_links(self, new_links: dict[str, dict[str, Any]]) -> None:
        pass

    def store_link(self, crm_key: str, values: dict[str, Any]) -> None:
        pass

    def save_many(self, fresh: list[Link], changed: list[Link], fields: list[str]) -> None:
        pass

    def save_remote_versions(self, versions: list[tuple[int, str]]) -> None:
        pass

    def set_state(self, link: Link, state: str) -> None:
        pass

    def forget(self, link: Link) -> None:
        pass

    def park(self, items: list[tuple[str, list[str]]]) -> None:
        self._parked.extend(items)

    def parked(self) -> list[tuple[str, list[str]]]:
        return list(self._parked)

    def unpark(self, remote_ids: list[str]) -> None:
        pass

    def drop_retries(self, retries: list[Retry]) -> None:
        pass

    def retry_later(self, side: str, key: str, reason: str) -> None:
        pass

    def retry_unless_waiting(self, side: str, key: str, reason: str) -> None:
        pass

    def close_candidacies(self, crm_key: str, remote_id: str) -> None:
        pass

    def mark_applied(self, candidate: DuplicateCandidate) -> None:
        pass

    def propose(self, crm_key: str, remote_id: str, *, address: str, remote_title: str,
                remote_fields: dict[str, Any], crm_title: str) -> None:
        pass

    def save_state(self, state: FolderState, **values: Any) -> None:
        pass


def link_table(profile: SyncProfile, agenda: str, *, dry_run: bool) -> LinkTable:
    """The table a run works with: a dry run's keeps no write."""
    return DryRunLinkTable(profile, agenda) if dry_run else LinkTable(profile, agenda)
