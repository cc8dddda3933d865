"""Raynet's daily request budget (24,000 requests per instance and UTC day), shared by every
profile and process reaching the instance, and planned rather than run into.

Every answer's `X-Ratelimit-Remaining`/`Reset` is kept on the instance's row
(engine/raynet_models.RaynetInstance), so a run knows what the others left. Before the
requests of a step (the run's reads at its start, the fetches of its changes, each write)
the budget is asked whether the step fits while a reserve stays (RAYNET_BUDGET_RESERVE, a
share of the limit, 5% unless set: "Test connection" and a user's own integrations keep
working); a step that does not fit stops the run in words, before its requests, and the
next run goes on where this one stopped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
from collections.abc import Callable

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext

from engine.crmstore.base import CrmError
from engine.raynet_models import RaynetInstance

DEFAULT_RESERVE = 0.05
# Requests one write takes: a person's create (the create, its read-back, the company's
# look-up), an update (the version's read, the edit, the read-back), a delete.
CREATE_COST = 3
UPDATE_COST = 3
DELETE_COST = 1
PAGE = 1000


def renews_at(reset: str) -> dt.datetime | None:
    """X-Ratelimit-Reset: a Unix time (small numbers, seconds from now, read so too)."""
    try:
        value = int(float(reset))
    except (TypeError, ValueError):
        return None
    if value < 10**9:
        return timezone.now() + dt.timedelta(seconds=value)
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


def renewal_words(moment: dt.datetime | None) -> str:
    if moment is None:
        moment = (timezone.now().astimezone(dt.UTC) + dt.timedelta(days=1)).replace(
            hour=0, minute=0, second=0, microsecond=0)
    return moment.astimezone(dt.UTC).strftime("%H:%M UTC")


def pages(count: int) -> int:
    return max(1, math.ceil(count / PAGE))


class InstanceBudget:
    def __init__(self, instance_key: str, probe: Callable[[], object] | None = None) -> None:
        """`probe`: one cheap request, sent once (a run) before the budget refuses a step,
        so that a number kept from earlier (another day's, a budget raised since) is not
        what stops the run."""
        self.instance_key = instance_key
        self._probe = probe
        # Answers told in the threads of parallel writes (raynet_bulk.py), which do not touch
        # the database: the latest is written by the thread that made this budget.
        self._owner_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._told: tuple[int | None, int, str] | None = None

    def record(self, limit: int | None, remaining: int | None, reset: str) -> None:
        """What an answer said, for every profile of the instance."""
        if remaining is None:
            return
        with self._lock:
            self._told = (limit, remaining, reset)
        if threading.get_ident() == self._owner_thread:
            self.flush()

    def flush(self) -> None:
        """The latest answer's budget written to the instance's row (in the thread that made
        this budget: a parallel write's thread calls nothing that touches the database)."""
        with self._lock:
            told, self._told = self._told, None
        if told is None:
            return
        limit, remaining, reset = told
        now = timezone.now()
        updated = RaynetInstance.objects.filter(key=self.instance_key).update(
            limit=limit, remaining=remaining, resets_at=renews_at(reset), budget_read_at=now)
        if not updated:
            RaynetInstance.objects.get_or_create(key=self.instance_key, defaults={
                "limit": limit, "remaining": remaining, "resets_at": renews_at(reset),
                "budget_read_at": now})

    def check(self, needed: int) -> None:
        """Stop the run, in words, if `needed` more requests would eat into the reserve."""
        self.flush()
        refusal = self._refusal(needed)
        if refusal and self._probe is not None:
            probe, self._probe = self._probe, None
            # Out of budget indeed (a 429), or unreachable: the words below.
            with contextlib.suppress(CrmError):
                probe()
            refusal = self._refusal(needed)
        if refusal:
            raise CrmError(refusal)

    def _refusal(self, needed: int) -> str:
        if needed <= 0:
            return ""   # a step that asks nothing more spends nothing
        row = RaynetInstance.objects.filter(key=self.instance_key).only(
            "limit", "remaining", "resets_at").first()
        if row is None or row.remaining is None:
            return ""   # nothing known yet: the first answer tells
        if row.resets_at is not None and row.resets_at <= timezone.now():
            return ""   # a new day: the budget is whole again
        reserve = math.ceil((row.limit or 0) * float(getattr(
            settings, "RAYNET_BUDGET_RESERVE", DEFAULT_RESERVE)))
        if row.remaining - needed >= reserve:
            return ""
        return (gettext(
            "Raynet's daily request budget would be used up: %(left)s left, this run needs "
            "~%(needed)s more (%(reserve)s are kept in reserve); it renews at %(at)s.") % {
            "left": row.remaining, "needed": needed, "reserve": reserve,
            "at": renewal_words(row.resets_at)})
