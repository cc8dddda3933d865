"""/healthz and /metrics: content and who may read them."""

from __future__ import annotations

import datetime as dt
import re

from django.test import override_settings
from django.utils import timezone

from engine.jobs import beat
from engine.models import Agenda, Heartbeat, Job, Run
from tests.base import BaseTestCase


class HealthTests(BaseTestCase):
    def test_healthy_when_a_worker_was_seen_recently(self) -> None:
        beat()
        response = self.client.get("/healthz")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert body["database"]["ok"] and body["broker"] == {"ok": True, "detail": "orm"}
        assert body["worker"]["ok"] and body["worker"]["seconds_since_seen"] < 5

    def test_unhealthy_without_a_worker(self) -> None:
        response = self.client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["worker"] == {"ok": False, "seconds_since_seen": None,
                                             "limit_seconds": 120}
        Heartbeat.objects.create(name="worker",
                                 seen_at=timezone.now() - dt.timedelta(minutes=3))
        response = self.client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["status"] == "unhealthy"
        assert response.json()["database"]["ok"]


@override_settings(METRICS_TOKEN="s3cret-token")
class MetricsTests(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.acme_profile = self.make_profile(self.acme, self.dave, "dave@acme.example")
        self.globex_profile = self.make_profile(self.globex, self.charlie, "c@globex.example")
        now = timezone.now()
        Run.objects.create(profile=self.acme_profile, agenda="contacts", status="success",
                           crm_created=3, remote_updated=2, started=now - dt.timedelta(minutes=5),
                           finished=now - dt.timedelta(minutes=4))
        Run.objects.create(profile=self.acme_profile, agenda="contacts", status="failed",
                           finished=now)
        Run.objects.create(profile=self.globex_profile, agenda="calendar", status="success",
                           crm_created=7, finished=now)
        Job.objects.filter(profile=self.acme_profile, agenda=Agenda.CALENDAR).update(paused=True)
        Job.objects.filter(profile=self.acme_profile, agenda=Agenda.CONTACTS).update(
            consecutive_failures=2)

    def test_a_scraper_with_the_token_sees_everything(self) -> None:
        response = self.client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.content.decode()
        assert '# TYPE syncserver_runs_total counter' in text
        assert 'syncserver_runs_total{agenda="contacts",kind="sync",status="success"} 1' in text
        assert 'syncserver_runs_total{agenda="contacts",kind="sync",status="failed"} 1' in text
        assert ('syncserver_items_total{agenda="contacts",side="crm",action="created"} 3'
                in text)
        assert ('syncserver_items_total{agenda="contacts",side="exchange",action="updated"} 2'
                in text)
        assert ('syncserver_items_total{agenda="calendar",side="crm",action="created"} 7'
                in text)
        match = re.search(r'syncserver_seconds_since_last_success\{organization="Acme",'
                          r'profile="dave@acme.example",agenda="contacts"\} ([\d.]+)', text)
        assert match and 230 < float(match.group(1)) < 300
        assert 'syncserver_queue_depth 0' in text
        assert 'syncserver_jobs{state="paused"} 1' in text
        assert 'syncserver_jobs{state="failing"} 1' in text
        assert 'syncserver_jobs{state="total"} 4' in text
        assert ('syncserver_job_consecutive_failures{organization="Acme",'
                'profile="dave@acme.example",agenda="contacts"} 2') in text
        assert "c@globex.example" in text
        # Every sample line is "name{labels} value" (the exposition format).
        for line in text.splitlines():
            if not line.startswith("#"):
                assert re.fullmatch(r'[a-z_]+(\{[^}]*\})? -?[\d.]+(e[+-]?\d+)?', line), line

    def test_access_needs_staff_or_the_token(self) -> None:
        assert self.client.get("/metrics").status_code == 401
        assert self.client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        self.client.force_login(self.dave)          # a plain user
        assert self.client.get("/metrics").status_code == 403
        self.client.force_login(self.alice)         # superuser: everything
        assert "c@globex.example" in self.client.get("/metrics").content.decode()

    def test_an_organization_administrator_sees_only_their_organization(self) -> None:
        self.client.force_login(self.bob)
        text = self.client.get("/metrics").content.decode()
        assert "dave@acme.example" in text
        assert "globex" not in text.lower()
        assert 'agenda="calendar",side="crm",action="created"} 7' not in text

    @override_settings(METRICS_TOKEN="")
    def test_no_token_configured_means_no_token_access(self) -> None:
        assert self.client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
