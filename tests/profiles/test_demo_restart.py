"""`make run` twice: the demo mailbox server and the demo organization set up as `make run`
sets them up (the command `manage.py serve` starts, then `setup_demo --share`), a sync of
every agenda, a restart of both, and another sync. The second start must look like the
first: the mailboxes kept their items under the same ids, so the CRM gets no second copy of
any person, event or e-mail and no new "possible duplicates"; attachments are saved on the
demo share once. The Raynet demo's simulator (started by `serve` beside it) keeps its
instance too: its organization's second start syncs nothing new either way.
"""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from crm.models import Document, Email, Event, Person
from engine.models import DuplicateCandidate, Run
from engine.records import ContactRecord, EventRecord, Kind
from profiles import demo_raynet
from profiles.models import CrmConnection, Organization, SyncProfile
from syncsite.management.commands.serve import DEMO_STATE_FILE, demo_mailbox_command

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoMailbox:
    """The demo mailbox server as `manage.py serve --demo-mailbox` runs it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[str] | None = None

    @property
    def ews_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/EWS/Exchange.asmx"

    def command(self) -> list[str]:
        return demo_mailbox_command("127.0.0.1", str(self.port))

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), cwd=REPO, stderr=subprocess.PIPE,
                                        text=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_control/counters",
                                       timeout=1)
                return
            except OSError:
                assert self.process.poll() is None, self.process.communicate()[1]
                assert time.monotonic() < deadline, "the demo mailbox server did not start"
                time.sleep(0.1)

    def stop(self) -> str:
        """Stopped as `serve` stops it (SIGTERM); its log."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        _, log = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, log
        self.process = None
        return log


class DemoRaynet(DemoMailbox):
    """The Raynet simulator as `manage.py serve --demo-mailbox` runs it with SYNC_DEMO."""

    @property
    def api_url(self) -> str:
        return demo_raynet.api_url(f"127.0.0.1:{self.port}")

    def command(self) -> list[str]:
        return demo_raynet.raynetsim_command("127.0.0.1", str(self.port))


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[DemoMailbox, DemoRaynet, Path]]:
    share = tmp_path / "demo-share"
    with override_settings(VAR_DIR=tmp_path, ATTACHMENT_ROOTS=[str(share)]):
        mailbox, raynet = DemoMailbox(_free_port()), DemoRaynet(_free_port())
        yield mailbox, raynet, share
        for server in (mailbox, raynet):
            if server.process is not None:
                server.stop()


def _start(mailbox: DemoMailbox, raynet: DemoRaynet, share: Path) -> None:
    mailbox.start()
    raynet.start()
    call_command("setup_demo", ews_url=mailbox.ews_url, raynet_url=raynet.api_url,
                 share=str(share), stdout=io.StringIO())


def _sync_everything() -> None:
    for profile in SyncProfile.objects.order_by("mailbox"):
        for agenda in ("contacts", "calendar", "mail")[:3 if profile.import_mail else 2]:
            call_command("syncnow", profile.mailbox, agenda=agenda, stdout=io.StringIO())


def _crm() -> dict[str, object]:
    return {
        "persons": sorted(Person.objects.values_list("first_name", "last_name", "email1")),
        "events": sorted(Event.objects.values_list("subject", "start")),
        "e-mails": sorted(Email.objects.values_list("subject", "message_id")),
        "documents": sorted(Document.objects.values_list("original_name", "path")),
        "candidates": sorted(DuplicateCandidate.objects.values_list(
            "profile__mailbox", "agenda", "crm_key", "remote_id", "decision")),
    }


def _raynet(raynet: DemoRaynet) -> dict[str, object]:
    """What the Raynet demo organization's instance holds."""
    backend = demo_raynet_backend()
    persons = backend.fetch(Kind.CONTACTS, [c.key for c in backend.changes_since(
        Kind.CONTACTS, "")])
    meetings = backend.fetch(Kind.CALENDAR, [c.key for c in backend.changes_since(
        Kind.CALENDAR, "")])
    return {"persons": sorted((k, r.record.email1) for k, r in persons.items()
                              if isinstance(r.record, ContactRecord)),
            "meetings": sorted((k, r.record.subject) for k, r in meetings.items()
                               if isinstance(r.record, EventRecord))}


def demo_raynet_backend() -> Any:
    profile = SyncProfile.objects.get(organization__name=demo_raynet.ORGANIZATION)
    connection = CrmConnection.objects.get(organization=profile.organization)
    return connection.backend_class.for_profile(profile, connection)


def test_a_second_make_run_looks_like_the_first(
        demo: tuple[DemoMailbox, DemoRaynet, Path]) -> None:
    mailbox, raynet, share = demo
    _start(mailbox, raynet, share)
    _sync_everything()
    first = _crm()
    in_raynet = _raynet(raynet)
    assert len(in_raynet["persons"]) >= 4 and len(in_raynet["meetings"]) >= 3  # type: ignore[arg-type]
    assert len(first["persons"]) > 10 and len(first["events"]) > 5  # type: ignore[arg-type]
    assert first["documents"], "the demo's attachments were saved on its share"
    assert all((share / name).is_dir() for name in ("jana", "tom"))

    assert "saved its mailboxes" in mailbox.stop()
    raynet.stop()
    assert (share.parent / DEMO_STATE_FILE).exists()
    assert (share.parent / demo_raynet.STATE_FILE).exists()
    _start(mailbox, raynet, share)
    _sync_everything()
    _sync_everything()   # and the runs after it, from the sync states the first left

    assert _crm() == first
    assert _raynet(raynet) == in_raynet
    assert Organization.objects.count() == 2
    assert not Run.objects.filter(errors__gt=0).exists()
    assert not Run.objects.exclude(status=Run.Status.SUCCESS).exists(), list(
        Run.objects.exclude(status=Run.Status.SUCCESS).values_list("agenda", "message"))
