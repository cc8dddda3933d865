"""Leases: a (profile, agenda) never runs twice at once, across processes and machines.

A lease row is claimed with one conditional UPDATE (free or expired → mine), renewed while
the run goes on, and released at the end. django-q2 delivers a task at least once, and a
worker can die mid-run: the lease makes a second delivery refuse to start, and an abandoned
lease expires on its own.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from engine.models import Lease

DEFAULT_TTL = dt.timedelta(minutes=5)


def lease_ttl() -> dt.timedelta:
    """How long a lease lasts without renewal: SYNC_LEASE_SECONDS, else five minutes.

    Read at each call, not bound as a default argument, so a process started with a short
    value (the scale tests kill a worker and wait for its lease to expire) really uses it."""
    seconds = getattr(settings, "SYNC_LEASE_SECONDS", None)
    return dt.timedelta(seconds=seconds) if seconds else DEFAULT_TTL


def claim(profile_id: int, agenda: str, holder: str, ttl: dt.timedelta | None = None) -> bool:
    ttl = ttl or lease_ttl()
    now = timezone.now()
    claimable = Lease.objects.filter(profile_id=profile_id, agenda=agenda).filter(
        Q(expires_at__lt=now) | Q(holder=holder))
    if claimable.update(holder=holder, expires_at=now + ttl) == 1:
        return True   # the usual case, one statement: the agenda's row exists and is free
    # Held by another run, or the agenda's first run: its row is made (expired) if missing,
    # and the same conditional UPDATE decides.
    Lease.objects.get_or_create(profile_id=profile_id, agenda=agenda,
                                defaults={"expires_at": now - dt.timedelta(seconds=1)})
    return claimable.update(holder=holder, expires_at=now + ttl) == 1


def renew(profile_id: int, agenda: str, holder: str, ttl: dt.timedelta | None = None) -> bool:
    """Extend a lease still held; False if it expired and someone else took it."""
    return Lease.objects.filter(profile_id=profile_id, agenda=agenda, holder=holder).update(
        expires_at=timezone.now() + (ttl or lease_ttl())) == 1


def release(profile_id: int, agenda: str, holder: str) -> None:
    Lease.objects.filter(profile_id=profile_id, agenda=agenda, holder=holder).update(
        holder="", expires_at=timezone.now())
