"""What both backends do alike with calendar events: which writes re-write a series'
occurrences and what that takes, and the events a calendar read hands out."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from engine.mailbox.base import Fetched, ItemError, ItemRef, Update, WriteResult
from engine.records import EventRecord, Record, RecurrenceRule

log = logging.getLogger(__name__)

# Record fields whose change re-writes a series' occurrences.
SERIES_FIELDS = frozenset({"exceptions", "deleted_occurrences", "recurrence"})


def rewrites_occurrences(update: Update) -> bool:
    """Whether writing `update` re-writes its series' occurrences too. Exchange carries a
    master's change over to the occurrences that do not set that field themselves, moved ones
    included: a series with exceptions has them written again after any change, so they stay
    as the record says."""
    return bool(update.fields & SERIES_FIELDS
                or (isinstance(update.record, EventRecord) and update.record.exceptions))


@dataclass(frozen=True)
class SeriesWrite:
    """A series written, whose exceptions and deleted occurrences are to be written next."""

    master: ItemRef          # the series as written
    record: EventRecord
    rule: RecurrenceRule
    first: dt.datetime       # the series' first start


def series_write(result: WriteResult, record: Record | None) -> SeriesWrite | None:
    """What writing the occurrences of a written record takes: None unless it is a series,
    written, that has exceptions or deleted occurrences."""
    if (result.ok and result.ref is not None and isinstance(record, EventRecord)
            and record.recurrence is not None and record.start is not None
            and (record.exceptions or record.deleted_occurrences)):
        return SeriesWrite(result.ref, record, record.recurrence, record.start)
    return None


def no_occurrence_at(original_start: dt.datetime | None) -> str:
    return f"no occurrence starts at {original_start}"


def occurrences_message(problems: list[str], message: str) -> str:
    """A series' result message once its occurrences are written: `message`, unless some
    could not be."""
    if problems:
        return "Some occurrences could not be written: " + "; ".join(problems)
    return message


def events_of(fetched: Iterable[Fetched]) -> Iterator[tuple[ItemRef, EventRecord]]:
    """The events among what a calendar read fetched; an item that could not be read, or is
    no event, is left out with a warning (the window is read again next run)."""
    for result in fetched:
        if isinstance(result, ItemError):
            log.warning("Calendar item skipped: %s", result.message)
            continue
        ref, record = result
        if not isinstance(record, EventRecord):
            log.warning("Calendar item skipped: %s is no event", type(record).__name__)
            continue
        yield ref, record
