"""Small attachments of a page of e-mails read ahead, many per request.

Streaming each attachment on its own cost a request per attachment: two thirds of an import
run's requests went to e-mails with two small attachments each (bench/mail.py). The import
hands this the page's e-mails in order with their small file attachments; asked for one
e-mail's contents, it reads that e-mail's and those of the e-mails after it in one
`read_attachments` call, as far as ATTACHMENT_BATCH_BYTES goes, and forgets the group before,
so a page costs a few requests; the next group is read in the mailbox's background thread
meanwhile, so at most two groups' content is in memory at a time. Larger
attachments (and any an e-mail has beyond the budget) are not here: the import streams them.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from engine.mailbox.base import (
    ATTACHMENT_BATCH_BYTES,
    BATCH_SIZE,
    SMALL_ATTACHMENT_BYTES,
    ItemRef,
    MailboxBackend,
    MailboxError,
    Pending,
)
from engine.records import AttachmentInfo

Content = bytes | MailboxError


@dataclass(frozen=True)
class Wanted:
    """A small file attachment of an e-mail, to be read ahead."""

    item: ItemRef
    ref: str
    size: int


def small_ones(item: ItemRef, attachments: list[AttachmentInfo]) -> list[Wanted]:
    """Which of an e-mail's wanted attachments to read ahead: files of a known size up to
    SMALL_ATTACHMENT_BYTES, as long as they fit in one batch together."""
    chosen: list[Wanted] = []
    total = 0
    for attachment in attachments:
        size = attachment.size
        if attachment.is_item or not 0 < size <= SMALL_ATTACHMENT_BYTES \
                or total + size > ATTACHMENT_BATCH_BYTES:
            continue
        chosen.append(Wanted(item, attachment.ref, size))
        total += size
    return chosen


class AttachmentPrefetch:
    def __init__(self, mailbox: MailboxBackend, wanted: list[list[Wanted]]) -> None:
        """`wanted`: each e-mail's small attachments (`small_ones`), in the order the import
        will ask for them."""
        self.mailbox = mailbox
        self._order = [w[0].item.id for w in wanted if w]
        self._wanted = {w[0].item.id: w for w in wanted if w}
        self._position = {item_id: i for i, item_id in enumerate(self._order)}
        self._group: dict[str, None] = {}   # the e-mails read last, in order
        self._contents: dict[tuple[str, str], Content] = {}
        self._following: _Group | None = None   # being read meanwhile

    def contents(self, item: ItemRef) -> dict[str, Content]:
        """The contents of the e-mail's attachments read ahead, by attachment ref: the bytes,
        or the MailboxError of one that could not be read (that e-mail's failure alone)."""
        if item.id not in self._position:
            return {}
        if item.id not in self._group:
            self._read_from(self._position[item.id])
        return {w.ref: self._contents[(item.id, w.ref)] for w in self._wanted[item.id]}

    def group(self) -> dict[str, dict[str, Content]]:
        """The contents read with the last e-mail asked for, by e-mail (in order) and
        attachment."""
        return {item_id: {w.ref: self._contents[(item_id, w.ref)]
                          for w in self._wanted[item_id]} for item_id in self._group}

    def close(self) -> None:
        """Wait for a group still being read (its e-mails not asked for after all), so that
        its requests count in the run, and drop it."""
        following, self._following = self._following, None
        if following is not None:
            with suppress(Exception):
                following.reading.result()

    def _read_from(self, start: int) -> None:
        if self._following is not None and self._following.start != start:
            self.close()   # e-mails skipped
        following, self._following = self._following, None
        if following is None:
            following = self._start_reading(start)
        self._group = dict.fromkeys(following.items)
        self._contents = {}   # the group before is done with: its memory goes
        try:
            results: list[Content] = following.reading.result()
        except MailboxError as exc:
            # The request as a whole failed: each of its e-mails fails (and is retried next
            # run) as it would have with its own download failing.
            results = [exc] * len(following.attachments)
        self._contents = {(w.item.id, w.ref): result
                          for w, result in zip(following.attachments, results, strict=True)}
        # The next group is read while this one's e-mails are filed.
        after = start + len(following.items)
        if after < len(self._order):
            self._following = self._start_reading(after)

    def _start_reading(self, start: int) -> _Group:
        """The group of e-mails from `start` on, as far as the budget of a request goes, its
        reading started in the mailbox's background thread."""
        attachments: list[Wanted] = []
        items: list[str] = []
        total = 0
        for item_id in self._order[start:]:
            wanted = self._wanted[item_id]
            size = sum(w.size for w in wanted)
            if attachments and (total + size > ATTACHMENT_BATCH_BYTES
                                or len(attachments) + len(wanted) > BATCH_SIZE):
                break
            attachments += wanted
            total += size
            items.append(item_id)
        pairs = [(w.item, w.ref) for w in attachments]
        return _Group(start, items, attachments,
                      self.mailbox.start(lambda: self.mailbox.read_attachments(pairs)))


@dataclass
class _Group:
    """E-mails whose attachments are read in one `read_attachments` call."""

    start: int                 # the first one's position
    items: list[str]
    attachments: list[Wanted]
    reading: Pending[list[Content]]
