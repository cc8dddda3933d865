"""Paging a folder's change log: the same answers as collapsing it whole, at a page's cost."""

from __future__ import annotations

import random
from itertools import islice

from ewsim.changelog import net_changes
from ewsim.store import Folder, Item

from .test_find_and_sync import _contacts


def _contact(item_id: str) -> Item:
    return Item(id=item_id, tag="Contact", folder_id="f", mailbox="m")


def _collapsed_whole(folder: Folder, since: int) -> list[tuple[int, str, str]]:
    """The definition: every change after `since`, grouped by item, then collapsed."""
    grouped: dict[str, list[tuple[int, str]]] = {}
    for seq, item_id, kind in folder.log:
        if seq > since:
            grouped.setdefault(item_id, []).append((seq, kind))
    out = []
    for item_id, changes in grouped.items():
        kinds = [kind for _seq, kind in changes]
        exists = item_id in folder.items
        if kinds[0] == "create":
            net = "create" if exists else None
        elif not exists:
            net = "delete"
        else:
            net = "update" if {"update", "create"} & set(kinds) else "read"
        if net is not None:
            out.append((changes[-1][0], item_id, net))
    return sorted(out)


def _folder_with_random_history(rng: random.Random, steps: int) -> Folder:
    folder = Folder(id="f", mailbox="m", display_name="Contacts")
    ever: list[str] = []
    for seq in range(1, steps + 1):
        choice = rng.random()
        if choice < 0.3 or not folder.items:
            item_id = f"i{len(ever)}"
            ever.append(item_id)
            folder.items[item_id] = _contact(item_id)
            folder.log.append((seq, item_id, "create"))
            continue
        item_id = rng.choice(list(folder.items))
        kind = "delete" if choice < 0.45 else "read" if choice < 0.6 else "update"
        if kind == "delete":
            del folder.items[item_id]
        folder.log.append((seq, item_id, kind))
    return folder


def test_paging_answers_as_collapsing_the_whole_log():
    rng = random.Random(26)
    for _round in range(20):
        folder = _folder_with_random_history(rng, 300)
        for since in (0, 1, 50, 150, 299, 300):
            assert list(net_changes(folder, since)) == _collapsed_whole(folder, since)


def test_histories_catch_up_with_changes_appended_between_pages():
    rng = random.Random(7)
    folder = _folder_with_random_history(rng, 200)
    assert list(net_changes(folder, 0)) == _collapsed_whole(folder, 0)
    folder.items["late"] = _contact("late")
    folder.log.append((201, "late", "create"))
    first_item = next(iter(folder.items))
    folder.log.append((202, first_item, "update"))
    assert list(net_changes(folder, 100)) == _collapsed_whole(folder, 100)
    assert list(net_changes(folder, 200))[-2:] == [(201, "late", "create"),
                                                   (202, first_item, "update")]


class CountingLog(list):
    """A change log that counts the entries read from it."""

    reads = 0

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        value = super().__getitem__(key)
        self.reads += len(value) if isinstance(key, slice) else 1
        return value


def _entries_read_for_a_page(items: int, page: int = 100) -> int:
    folder = Folder(id="f", mailbox="m", display_name="Contacts")
    folder.log = CountingLog()
    for seq in range(1, items + 1):
        folder.items[f"i{seq}"] = _contact(f"i{seq}")
        folder.log.append((seq, f"i{seq}", "create"))
    list(islice(net_changes(folder, 0), 1))        # the folder's histories are built once
    since = items // 2                             # a page from the middle of a full read
    folder.log.reads = 0
    assert len(list(islice(net_changes(folder, since), page + 1))) == page + 1
    return folder.log.reads


def test_a_page_costs_the_same_in_a_small_and_a_large_folder():
    small, large = _entries_read_for_a_page(1_000), _entries_read_for_a_page(40_000)
    # The page's own entries plus a binary search for its start: log2(40,000) ≈ 15.
    assert small <= 101 + 15
    assert large <= small + 10


def test_the_pages_of_a_large_sync_return_every_item_once_then_later_changes(ewsim, account):
    created = []
    for _chunk in range(6):
        created += _contacts(account, 200)
    folder = account.contacts
    seen = [(kind, item.id) for kind, item in
            folder.sync_items(only_fields=["display_name"], max_changes_returned=100)]
    assert len(seen) == 1_200
    assert {kind for kind, _id in seen} == {"create"}
    assert sorted(item_id for _kind, item_id in seen) == sorted(c.id for c in created)
    state = folder.item_sync_state
    ewsim.control.update_item(created[500].id, DisplayName="Edited after the read")
    again = list(folder.sync_items(sync_state=state, only_fields=["display_name"],
                                   max_changes_returned=100))
    assert [(kind, item.display_name) for kind, item in again] == [
        ("update", "Edited after the read")]
