"""CSV exports of the history, a run's items and the duplicates report.

Written the way the user's spreadsheet reads them without an import dialog: Excel opens a
CSV with the separator, decimal mark and dates of the system's locale. Where the decimal mark
is a comma (Czech), the list separator is a semicolon and dates are written day first; in
English a comma and ISO dates. The user's language (the page's) stands for their locale.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import formats, timezone

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


@dataclass(frozen=True)
class CsvFormat:
    """How one export writes separators, numbers and times (`csv_format` picks it)."""

    delimiter: str
    decimal: str
    time_format: str

    def time(self, value: dt.datetime | None) -> str:
        """A time as the user's clock shows it, in a form their spreadsheet reads as a date."""
        return timezone.localtime(value).strftime(self.time_format) if value else ""

    def number(self, value: float | None, places: int = 1) -> str:
        return f"{value:.{places}f}".replace(".", self.decimal) if value is not None else ""


def csv_format() -> CsvFormat:
    """The format of the active language, taken when the export starts: the rows are written
    while the response streams, after the request's language may have been switched off."""
    decimal = formats.get_format("DECIMAL_SEPARATOR")
    # The first input format of a language is the one its spreadsheets read back (cs:
    # "%d.%m.%Y %H:%M:%S", en: "%Y-%m-%d %H:%M:%S").
    time_format = formats.get_format("DATETIME_INPUT_FORMATS")[0]
    return CsvFormat(";" if decimal == "," else ",", decimal, time_format)


def csv_response(filename: str, header: list[str], rows: Iterable[list[Any]],
                 fmt: CsvFormat) -> StreamingHttpResponse:
    """Streamed: a history of many thousand runs is never held in memory. UTF-8 starting with
    a byte order mark, without which Excel takes the file for the system's code page and
    garbles Czech letters."""
    writer = csv.writer(_Echo(), delimiter=fmt.delimiter)

    def lines() -> Iterator[str]:
        yield "\ufeff" + writer.writerow(header)
        for row in rows:
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
