"""What a remote server answered is never echoed: an organization's administrator who points
a connection at some other service (one the operator has allowed, on-premises) learns its
status code and what went wrong in words, not its headers or body.

A hostile server answers every request with a marker in its reason phrase, a header and its
body, in the shapes an EWS or Graph client meets (an error page, a SOAP fault, a redirect, a
JSON error); the marker must appear in no page, no stored run or diagnosis, no log line.
"""

from __future__ import annotations

import dataclasses
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client

from crm.models import CrmUser
from engine.jobs import run_job
from engine.mailbox.base import Auth, MailboxAccess, MailboxError
from engine.mailbox.diagnose import Report, diagnose
from engine.mailbox.ews import EwsMailbox
from engine.mailbox.graph import GraphMailbox
from engine.models import Run, RunItem
from ewsim.testing import SimHandle
from profiles.models import MailboxConnection, Organization, SyncProfile
from tests.engine.mailbox.graph_access import graph_access

MARKER = "Qx7-internal-answer-marker"


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: str
    location: str = ""


ANSWERS = {
    "error page": Answer(500, "text/html", f"<html><body>{MARKER} stack trace</body></html>"),
    "soap fault": Answer(500, "text/xml", (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        f"<s:Body><s:Fault><faultcode>s:Server</faultcode><faultstring>{MARKER}</faultstring>"
        "</s:Fault></s:Body></s:Envelope>")),
    "redirect": Answer(302, "text/html", MARKER, location=f"https://{MARKER}.example/owa"),
    "json error": Answer(400, "application/json",
                         f'{{"error": {{"code": "{MARKER}", "message": "{MARKER}"}}, '
                         f'"error_description": "{MARKER}"}}'),
    "not found": Answer(404, "text/plain", f"{MARKER} not here"),
}


def _handler(answer: Answer) -> type[http.server.BaseHTTPRequestHandler]:
    class Hostile(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = answer.body.encode()
            self.send_response(answer.status, f"{MARKER} reason")
            self.send_header("Content-Type", answer.content_type)
            self.send_header("X-Internal-Service", MARKER)
            self.send_header("X-CasErrorCode", MARKER)
            if answer.location:
                self.send_header("Location", answer.location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Hostile


@pytest.fixture(params=sorted(ANSWERS))
def hostile(request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL of a server answering as ANSWERS[param] does, on the allowed loopback."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(ANSWERS[request.param]))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def ews_access(url: str, **values: object) -> MailboxAccess:
    return MailboxAccess(**{"mailbox": "alice@example.com", "endpoint": url, "auth": Auth.BASIC,
                            "username": "svc@example.com", "secret": "svc-Pa55-answers",
                            "impersonate": True, **values})  # type: ignore[arg-type]


def _report_texts(report: Report) -> list[str]:
    return [report.message, *(f"{s.name} {s.detail}" for s in report.steps)]


def _no_marker(texts: list[str]) -> None:
    leaks = [text for text in texts if MARKER.lower() in text.lower()]
    assert not leaks, f"the remote answer is echoed: {leaks[:3]}"


def test_test_connection_on_ews_says_what_went_wrong_without_the_answer(
        hostile: str, every_log_line: list[str]) -> None:
    report = diagnose(ews_access(f"{hostile}/EWS/Exchange.asmx", throttle_budget_seconds=0.5),
                      timeout=3)
    assert not report.ok and report.message
    _no_marker(_report_texts(report) + every_log_line)


def test_the_ews_backend_raises_words_and_a_status_not_the_answer(
        hostile: str, every_log_line: list[str]) -> None:
    with pytest.raises(MailboxError) as raised, EwsMailbox(
            ews_access(f"{hostile}/EWS/Exchange.asmx", throttle_budget_seconds=0.5)) as mailbox:
        mailbox.check()
    _no_marker([raised.value.message, str(raised.value), *every_log_line])


def test_the_graph_backend_raises_words_and_a_status_not_the_answer(
        ewsim: SimHandle, hostile: str, every_log_line: list[str]) -> None:
    # The token comes from the simulator's identity platform; Graph itself is the hostile one.
    access = graph_access(ewsim, endpoint=f"{hostile}/v1.0", throttle_budget_seconds=0.5)
    with pytest.raises(MailboxError) as raised, GraphMailbox(access) as mailbox:
        mailbox.check()
    _no_marker([raised.value.message, *every_log_line])
    report = diagnose(access, "graph", timeout=3)
    _no_marker(_report_texts(report) + every_log_line)


def test_a_hostile_token_endpoint_is_not_echoed_either(
        ewsim: SimHandle, hostile: str, every_log_line: list[str]) -> None:
    access = dataclasses.replace(graph_access(ewsim), token_url=f"{hostile}/token",
                                 settings_version=f"hostile-{hostile}")
    report = diagnose(access, "graph", timeout=3)
    assert not report.ok
    _no_marker(_report_texts(report) + every_log_line)


@pytest.mark.django_db(transaction=True)
def test_no_page_or_stored_run_repeats_the_answer(hostile: str,
                                                  every_log_line: list[str]) -> None:
    organization = Organization.objects.create(name="Acme")
    connection = MailboxConnection(organization=organization, name="Intranet",
                                   ews_url=f"{hostile}/EWS/Exchange.asmx", auth_type="basic",
                                   username="svc@example.com")
    connection.set_secret("svc-Pa55-answers")
    connection.save()
    owner = User.objects.create_user("owner", "owner@example.com", "pw")
    crm_user = CrmUser.objects.create(organization=organization, name="Owner", login="owner")
    profile = SyncProfile.objects.create(organization=organization, user=owner,
                                         mailbox="alice@example.com", crm_user=crm_user,
                                         connection=connection, sync_calendar=False)

    assert run_job(profile.pk, "contacts", trigger="manual") == Run.Status.FAILED
    stored = [str(run.__dict__) for run in Run.objects.filter(profile=profile)]
    stored += [str(item.__dict__) for item in RunItem.objects.filter(run__profile=profile)]

    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    pages = [admin.post(f"/admin/profiles/{kind}/{pk}/test-connection/", follow=True)
             for kind, pk in (("mailboxconnection", connection.pk),
                              ("syncprofile", profile.pk))]
    pages.append(admin.get(f"/admin/engine/run/{Run.objects.get(profile=profile).pk}/change/"))
    pages.append(admin.get("/admin/engine/run/"))
    assert all(page.status_code == 200 for page in pages)
    assert any("Intranet" in page.content.decode() or "alice@example.com" in
               page.content.decode() for page in pages), "the pages are the ones asked for"
    _no_marker(stored + [page.content.decode() for page in pages] + every_log_line)
