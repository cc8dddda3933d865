"""`/healthz` for load balancers and supervisors, `/metrics` for Prometheus.

`/healthz` answers 200 when the database and the broker answer and a worker has been seen in
the last two minutes, else 503; it shows no names, so it is open to anyone. A worker is "seen"
through the heartbeat the dispatcher (every minute) and every sync task write to the database:
django-q2's own cluster statistics live in the cache, which by default is per process and so
invisible from the web server.

`/metrics` is the Prometheus text format (version 0.0.4). It names mailboxes, so it is open to
staff users (organization administrators see their organization's series only) and to a
scraper presenting `Authorization: Bearer <METRICS_TOKEN>`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, QuerySet, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from engine.jobs import WORKER_HEARTBEAT
from engine.models import Heartbeat, Job, Run
from profiles.scoping import is_organization_admin, organization_of, sees_everything

WORKER_SEEN_WITHIN = dt.timedelta(minutes=2)


# --- health --------------------------------------------------------------------------------
def _check_database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return False, type(exc).__name__
    return True, "ok"


def _check_broker() -> tuple[bool, str]:
    try:
        if settings.Q_CLUSTER.get("redis"):
            from django_q.brokers import get_broker

            return bool(get_broker().ping()), "redis"
        from django_q.models import OrmQ

        OrmQ.objects.exists()   # the ORM broker is this table
    except Exception as exc:
        return False, type(exc).__name__
    return True, "orm"


def _check_worker(now: dt.datetime) -> tuple[bool, float | None]:
    try:
        seen = Heartbeat.objects.filter(name=WORKER_HEARTBEAT).values_list(
            "seen_at", flat=True).first()
    except Exception:
        return False, None
    if seen is None:
        return False, None
    age = (now - seen).total_seconds()
    return age <= WORKER_SEEN_WITHIN.total_seconds(), round(age, 1)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    now = timezone.now()
    database_ok, database = _check_database()
    broker_ok, broker = _check_broker()
    worker_ok, worker_age = _check_worker(now) if database_ok else (False, None)
    healthy = database_ok and broker_ok and worker_ok
    body = {
        "status": "ok" if healthy else "unhealthy",
        "database": {"ok": database_ok, "detail": database},
        "broker": {"ok": broker_ok, "detail": broker},
        "worker": {"ok": worker_ok, "seconds_since_seen": worker_age,
                   "limit_seconds": int(WORKER_SEEN_WITHIN.total_seconds())},
    }
    return JsonResponse(body, status=200 if healthy else 503)


# --- metrics -------------------------------------------------------------------------------
def _allowed(request: HttpRequest) -> tuple[bool, Any]:
    """(may see metrics, organization to confine them to or None for all)."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(
            header.removeprefix("Bearer ").strip().encode(), token.encode()):
        return True, None
    user = request.user
    if sees_everything(user):
        return True, None
    if is_organization_admin(user):
        return True, organization_of(user)
    return False, None


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[dict[str, object], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            number = repr(float(value)) if isinstance(value, float) else str(int(value))
            self.lines.append(f"{name}{_labels(**labels)} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


ITEM_FIELDS = {
    ("crm", "created"): "crm_created", ("crm", "updated"): "crm_updated",
    ("crm", "deleted"): "crm_deleted", ("exchange", "created"): "remote_created",
    ("exchange", "updated"): "remote_updated", ("exchange", "deleted"): "remote_deleted",
    ("both", "linked"): "linked", ("both", "conflict"): "conflicts",
    ("both", "skipped"): "skipped", ("both", "error"): "errors",
}


def _queue_depth() -> int | None:
    try:
        from django_q.brokers import get_broker

        return int(get_broker().queue_size() or 0)
    except Exception:
        return None


def render_metrics(organization: Any = None) -> str:
    now = timezone.now()
    runs: QuerySet[Run] = Run.objects.all()
    jobs: QuerySet[Job] = Job.objects.all()
    if organization is not None:
        runs = runs.filter(profile__organization=organization)
        jobs = jobs.filter(profile__organization=organization)
    out = _Exposition()

    by_status = runs.values("agenda", "kind", "status").annotate(n=Count("pk")).order_by(
        "agenda", "kind", "status")
    out.family("syncserver_runs_total", "counter",
               "Sync runs in the history, by agenda, kind and status.",
               [({"agenda": r["agenda"], "kind": r["kind"], "status": r["status"]}, r["n"])
                for r in by_status])

    sums = runs.filter(kind=Run.Kind.SYNC).values("agenda").annotate(
        **{field: Sum(field) for field in ITEM_FIELDS.values()}).order_by("agenda")
    out.family("syncserver_items_total", "counter",
               "Items handled by sync runs, by agenda, side and action.",
               [({"agenda": row["agenda"], "side": side, "action": action}, row[field] or 0)
                for row in sums for (side, action), field in ITEM_FIELDS.items()])

    successes = runs.filter(kind=Run.Kind.SYNC, status__in=[
        Run.Status.SUCCESS, Run.Status.PARTIAL], finished__isnull=False).values(
        "profile__mailbox", "profile__organization__name", "agenda").annotate(
        last=Max("finished")).order_by("profile__mailbox", "agenda")
    out.family("syncserver_seconds_since_last_success", "gauge",
               "Seconds since the last successful sync, per profile and agenda.",
               [({"organization": r["profile__organization__name"],
                  "profile": r["profile__mailbox"], "agenda": r["agenda"]},
                 round((now - r["last"]).total_seconds(), 1)) for r in successes])

    out.family("syncserver_runs_in_progress", "gauge", "Sync runs going on now.",
               [({}, runs.filter(status=Run.Status.RUNNING).count())])

    depth = _queue_depth()
    out.family("syncserver_queue_depth", "gauge",
               "Tasks waiting in the django-q2 queue (all organizations).",
               [({}, depth)] if depth is not None else [])

    job_rows = list(jobs.values("profile__mailbox", "profile__organization__name", "agenda",
                                "paused", "consecutive_failures", "alerted_at").order_by(
        "profile__mailbox", "agenda"))
    out.family("syncserver_jobs", "gauge", "Scheduled jobs (one per enabled agenda).",
               [({"state": "total"}, len(job_rows)),
                ({"state": "paused"}, sum(1 for j in job_rows if j["paused"])),
                ({"state": "failing"}, sum(1 for j in job_rows if j["consecutive_failures"])),
                ({"state": "alerted"}, sum(1 for j in job_rows if j["alerted_at"]))])
    out.family("syncserver_job_consecutive_failures", "gauge",
               "Failed runs in a row, per profile and agenda.",
               [({"organization": j["profile__organization__name"],
                  "profile": j["profile__mailbox"], "agenda": j["agenda"]},
                 j["consecutive_failures"]) for j in job_rows])
    out.family("syncserver_job_paused", "gauge", "1 when the job is paused.",
               [({"organization": j["profile__organization__name"],
                  "profile": j["profile__mailbox"], "agenda": j["agenda"]},
                 1 if j["paused"] else 0) for j in job_rows])
    return out.text()


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    allowed, organization = _allowed(request)
    if not allowed:
        # 401 asks a scraper for its token; a signed-in non-staff user is simply refused.
        anonymous = not request.user.is_authenticated
        return HttpResponse(json.dumps({"error": "unauthorized" if anonymous else "forbidden"}),
                            status=401 if anonymous else 403, content_type="application/json",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return HttpResponse(render_metrics(organization),
                        content_type="text/plain; version=0.0.4; charset=utf-8")
