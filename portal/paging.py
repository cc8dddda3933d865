"""Pages of long lists without counting them.

The history of a busy organization grows by thousands of runs a day; COUNT(*) over it on
every page view would cost more than the page itself. A page asks for one row more than it
shows: that row says whether an older page exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import QueryDict


@dataclass
class Page:
    items: Sequence[Any]
    number: int
    has_next: bool
    query: QueryDict   # the request's other parameters, kept by the page links

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    def _link(self, number: int) -> str:
        query = self.query.copy()
        query["page"] = str(number)
        return "?" + query.urlencode()

    @property
    def next_link(self) -> str:
        return self._link(self.number + 1)

    @property
    def previous_link(self) -> str:
        return self._link(self.number - 1)


def page_of(queryset: QuerySet[Any], query: QueryDict, size: int) -> Page:
    try:
        number = max(1, int(query.get("page", "1")))
    except ValueError:
        number = 1
    start = (number - 1) * size
    rows = list(queryset[start:start + size + 1])
    return Page(rows[:size], number, len(rows) > size, query)
