"""Leases: a (profile, agenda) never runs twice at once, across processes and machines.

A lease row is claimed with one conditional UPDATE (free or expired → mine), renewed while
the run goes on, and released at the end. django-q2 delivers a task at least once, and a
worker can die mid-run: the lease makes a second delivery refuse to start, and an abandoned
lease expires on its own.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.utils import timezone

from engine.models import Lease

DEFAULT_TTL = dt.timedelta(minutes=5)


def claim(profile_id: int, agenda: str, holder: str, ttl: dt.timedelta = DEFAULT_TTL) -> bool:
    now = timezone.now()
    Lease.objects.get_or_create(profile_id=profile_id, agenda=agenda,
                                defaults={"expires_at": now - dt.timedelta(seconds=1)})
    claimed = Lease.objects.filter(profile_id=profile_id, agenda=agenda).filter(
        Q(expires_at__lt=now) | Q(holder=holder)).update(holder=holder, expires_at=now + ttl)
    return claimed == 1


def renew(profile_id: int, agenda: str, holder: str, ttl: dt.timedelta = DEFAULT_TTL) -> bool:
    """Extend a lease still held; False if it expired and someone else took it."""
    return Lease.objects.filter(profile_id=profile_id, agenda=agenda, holder=holder).update(
        expires_at=timezone.now() + ttl) == 1


def release(profile_id: int, agenda: str, holder: str) -> None:
    Lease.objects.filter(profile_id=profile_id, agenda=agenda, holder=holder).update(
        holder="", expires_at=timezone.now())
