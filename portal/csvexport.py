"""CSV exports of the history, a run's items and the duplicates report."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone

# A cell starting with one of these is a formula to Excel. Item names and details come from
# mailboxes anyone can write to (a contact named "=HYPERLINK(…)"): such text is exported
# with a leading apostrophe, which makes Excel show it as plain text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    """csv.writer writes into this and gets the line back, to stream it."""

    def write(self, value: str) -> str:
        return value


def csv_response(filename: str, header: list[str],
                 rows: Iterable[list[Any]]) -> StreamingHttpResponse:
    """Streamed: a history of many thousand runs is never held in memory. Starts with a
    byte order mark, without which Excel (where most users open it) garbles Czech letters."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield "\ufeff" + writer.writerow(header)
        for row in rows:
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def csv_time(value: dt.datetime | None) -> str:
    """A time as the user's clock shows it, in a form spreadsheets read as a date."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""
