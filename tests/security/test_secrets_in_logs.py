"""A mailbox password never reaches a log line, the run history or a stored error text.

A contacts sync runs as a worker runs it (engine.jobs.run_job), against ewsim over HTTP,
first with a wrong password, then with the right one, while every logger of every library
records at DEBUG level. Each formatted line (with its traceback) is searched for the
secrets, and for them as they travel (Basic authentication's base64).
"""

from __future__ import annotations

import base64
import logging

import pytest
from django.contrib.auth.models import User
from django.core import mail

from crm.models import CrmUser
from engine.jobs import run_job
from engine.models import Job, Run, RunItem
from ewsim.testing import SimHandle
from profiles.models import AuditEntry, MailboxConnection, Organization, SyncProfile

pytestmark = pytest.mark.django_db(transaction=True)

SERVICE = "svc-logcheck@example.com"
RIGHT_SECRET = "R1ght-Pa55-x9Lq-logcheck"
WRONG_SECRET = "Wr0ng-Pa55-k2Vd-logcheck"


def _forms_of(secret: str) -> list[str]:
    """The secret, and the secret as a Basic Authorization header carries it."""
    basic = base64.b64encode(f"{SERVICE}:{secret}".encode()).decode()
    return [secret, basic]


def _stored_texts(profile: SyncProfile) -> list[str]:
    texts: list[str] = []
    for run in Run.objects.filter(profile=profile):
        texts += [run.message, str(run.__dict__)]
    for item in RunItem.objects.filter(run__profile=profile):
        texts.append(str(item.__dict__))
    for job in Job.objects.filter(profile=profile):
        texts.append(str(job.__dict__))
    for entry in AuditEntry.objects.all():
        texts.append(str(entry.__dict__))
    for message in mail.outbox:
        texts += [message.subject, message.body]
    return texts


def _profile(sim: SimHandle, secret: str) -> SyncProfile:
    sim.control.add_user(SERVICE, RIGHT_SECRET, can_impersonate=["*"])
    organization = Organization.objects.create(name="Acme")
    connection = MailboxConnection(organization=organization, name="ewsim", ews_url=sim.url,
                                   auth_type="basic", username=SERVICE)
    connection.set_secret(secret)
    connection.save()
    user = User.objects.create_user("owner", "owner@example.com", "pw")
    User.objects.create_superuser("root", "root@example.com", "pw")   # receives alerts
    crm_user = CrmUser.objects.create(organization=organization, name="Owner", login="owner")
    return SyncProfile.objects.create(organization=organization, user=user, mailbox=sim.user,
                                      crm_user=crm_user, connection=connection,
                                      sync_calendar=False)


def test_no_secret_in_any_log_line_or_stored_text(ewsim: SimHandle,
                                                 every_log_line: list[str]) -> None:
    profile = _profile(ewsim, WRONG_SECRET)

    assert run_job(profile.pk, "contacts", trigger="manual") == Run.Status.FAILED
    failed = Run.objects.get(profile=profile)
    assert failed.message, "the failure says why"

    connection = profile.connection
    connection.set_secret(RIGHT_SECRET)
    connection.save()
    assert run_job(profile.pk, "contacts", trigger="manual") == Run.Status.SUCCESS

    # Enough was logged for the search to mean something: the HTTP exchange itself.
    assert len(every_log_line) > 20
    assert any(SERVICE in line or "Exchange.asmx" in line for line in every_log_line)
    searched = every_log_line + _stored_texts(profile)
    for secret in (WRONG_SECRET, RIGHT_SECRET):
        for form in _forms_of(secret):
            leaks = [text for text in searched if form in text]
            assert not leaks, f"{form!r} appears in: {leaks[:3]}"


def test_the_search_would_find_a_leak(every_log_line: list[str]) -> None:
    # Text that looks like nothing secret passes through: the search above can fail.
    unlisted = base64.b64encode(b"not a credential").decode()
    logging.getLogger("engine.any").debug("some value %s", unlisted)
    assert any(unlisted in line for line in every_log_line)


def test_credentials_are_cut_out_of_records_whoever_logs_them(every_log_line: list[str],
                                                              db: None) -> None:
    basic = _forms_of(WRONG_SECRET)[1]
    log = logging.getLogger("some.library")
    log.debug("Request headers: %s", {"Authorization": f"Basic {basic}", "Accept": "*/*"})
    log.debug("Authorization: Bearer eyJ0eXAi.payload.signature")
    log.info("POST data: grant_type=client_credentials&client_secret=s3cr3t-value&scope=x")
    MailboxConnection(name="x").set_secret("Decrypted-Once-Pa55")
    log.warning("the password was %s", "Decrypted-Once-Pa55")
    try:
        raise ValueError("bad password Decrypted-Once-Pa55")
    except ValueError:
        log.exception("failed")
    text = "\n".join(every_log_line)
    for leaked in (basic, "eyJ0eXAi", "s3cr3t-value", "Decrypted-Once-Pa55"):
        assert leaked not in text
    assert "'Accept': '*/*'" in text and "grant_type=client_credentials" in text
    assert text.count("[redacted]") >= 5
